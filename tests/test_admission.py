"""The embedded admission API: Admitter / AsyncAdmitter and the Admission context manager (release on
exit, dropped on an exception, idempotent, a denial holds nothing), over the Lua guard."""

from __future__ import annotations

import asyncio

import pytest

import throttlekit as tk
from throttlekit.concurrency import FusedAxes, concurrency_params

T0 = 1_700_000_000_000


def test_admission_context_manager_releases_and_drops_on_error() -> None:
    clock = tk.ManualClock(T0)
    adm = tk.Admitter(concurrency_params(min_limit=1, max_limit=200, initial_limit=100), clock=clock)
    with adm.admit() as a:
        assert a.allowed and a.held and a.binding_axis == "" and a.lease_expires_at == T0 + 60_000
        assert adm.inflight == 1
        clock.advance(10)
    assert adm.inflight == 0 and adm.limit == 100  # released, completed: slot 1 * 2 < 100, no update
    with pytest.raises(RuntimeError), adm.admit() as a:
        raise RuntimeError("work failed")
    # released as dropped: gradient2 n = 100*0.5 + sqrt(100) = 60, EMA 0.8*100 + 0.2*60 = 92
    assert adm.inflight == 0 and adm.limit == 92
    a.release()
    a.release(dropped=True)  # idempotent
    assert adm.limit == 92
    adm.close()


def test_a_denial_holds_nothing_and_the_rate_axis_binds_second() -> None:
    clock = tk.ManualClock(T0)
    rate = tk.Limiter(tk.Gcra(2, "10s"), clock=clock)
    adm = tk.Admitter(concurrency_params(min_limit=1, max_limit=1), rate=rate, clock=clock)
    a = adm.admit("u")
    b = adm.admit("u")
    assert (a.allowed, b.allowed, b.binding_axis, b.held) == (True, False, "concurrency", False)
    b.release()  # a no-op: nothing held
    a.release()
    assert adm.admit("u").allowed  # gcra burst 2: the second token
    c = adm.admit("u")
    assert (c.allowed, c.binding_axis, c.held) == (False, "concurrency", False)


def test_rate_denial_returns_the_slot_unused() -> None:
    clock = tk.ManualClock(T0)
    rate = tk.Limiter(tk.Gcra(1, "10s"), clock=clock)
    adm = tk.Admitter(concurrency_params(min_limit=2, max_limit=2), rate=rate, clock=clock)
    first = adm.admit("u")
    second = adm.admit("u")
    assert (second.allowed, second.binding_axis, second.held) == (False, "rate", False)
    assert second.decision == tk.Decision(False, 1, 0, T0 + 10_000, 10_000)
    assert adm.inflight == 1
    first.release()


def test_sweep_reclaims_abandoned_admissions_as_dropped() -> None:
    clock = tk.ManualClock(T0)
    adm = tk.Admitter(concurrency_params(min_limit=1, max_limit=1), clock=clock, lease_ttl_ms=1000)
    a = adm.admit()
    assert not adm.admit().allowed
    clock.advance(1000)
    assert adm.sweep() == 1
    assert adm.admit().allowed
    a.release()  # reclaimed already: nothing is returned twice
    assert not adm.admit().allowed


def test_async_admitter() -> None:
    async def run() -> None:
        clock = tk.ManualClock(T0)
        rate = tk.AsyncLimiter(tk.Gcra(5, "1s"), store=tk.MemoryStore(clock=clock), clock=clock)
        adm = tk.AsyncAdmitter(concurrency_params(min_limit=1, max_limit=1), rate=rate, clock=clock)
        async with await adm.admit("k") as a:
            assert isinstance(a, tk.AsyncAdmission) and a.allowed
            assert not (await adm.admit("k")).allowed
        with pytest.raises(ValueError):
            async with await adm.admit("k"):
                raise ValueError
        assert adm.inflight == 0

    asyncio.run(run())


def test_fused_rate_and_cost_axes_in_one_lua_call() -> None:
    clock = tk.ManualClock(T0)
    fused = FusedAxes(tk.Gcra(2, 1000), tk.TokenBucket(10, 5), clock=clock)
    adm = tk.Admitter(concurrency_params(min_limit=4, max_limit=4), fused=fused, clock=clock)
    a = adm.admit("k", 4)
    assert a.allowed and a.decision == tk.Decision(True, 2, 1, T0 + 800, 0)  # min(conc 3, rate 1, cost 6)
    # the bucket (6 left) denies 7 while rate allows and spends its 2nd token (each axis writes iff it
    # allowed: spec 10.4, unlike the sequential path): cost binds
    b = adm.admit("k", 7)
    assert (b.allowed, b.binding_axis, b.held) == (False, "cost", False)
    c = adm.admit("k", 1)  # the burst is spent: rate binds (the bucket still debits 1)
    assert (c.allowed, c.binding_axis, c.decision.remaining) == (False, "rate", 0)
    assert adm.inflight == 1
    with pytest.raises(tk.ConfigError):
        tk.Admitter(fused=fused, rate=tk.Limiter(tk.Gcra(1, 1000)))
