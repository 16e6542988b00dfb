"""TwoTierLimiter (spec 6.1 to 6.3) on a memory L2 with a manual clock; expectations worked out by hand."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import throttlekit as tk
from throttlekit.stores.base import EvalBinding
from throttlekit.two_tier import TwoTierLimiter

T0 = 1_000_000  # a window start for 1000 ms windows


class Counting(EvalBinding):
    """An async L2 store that counts transform runs and can run a hook after each."""

    def __init__(self, clock: tk.ManualClock) -> None:
        self.inner = tk.MemoryStore(clock=clock)
        self.prefix = ""
        self.calls: Counter[str] = Counter()
        self.after: Callable[[], None] | None = None
        self.fail = False

    async def aeval(self, name: str, keys: Sequence[str], now: float, args: Sequence[Any]) -> Any:
        self.calls[name] += 1
        await asyncio.sleep(0)  # a round trip yields to the loop
        if self.fail:
            raise tk.StoreError("l2 down")
        r = self.inner.eval(name, keys, now, args)
        if self.after is not None:
            self.after()
        return r

    async def adelete(self, key: str) -> None:
        self.inner.delete(key)

    async def aclose(self) -> None:
        self.inner.close()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def d(allowed: bool, limit: int, remaining: int, reset_at: int, retry: int) -> tk.Decision:
    return tk.Decision(allowed, limit, remaining, reset_at, retry)


def test_leased_spends_locally_and_returns_the_l2_denial_verbatim() -> None:
    clock = tk.ManualClock(T0)
    l2 = Counting(clock)

    async def main() -> list[tk.Decision]:
        async with TwoTierLimiter(tk.FixedWindow(10, 1000), store=l2, batch=4, clock=clock) as tt:
            out = [await tt.check("k") for _ in range(8)]
            clock.advance(250)
            out.append(await tt.check("k"))  # L2 has 2 left: a lease of 4 is refused (all-or-nothing)
            return out

    got = run(main())
    assert got[:8] == [d(True, 10, r, T0 + 1000, 0) for r in (3, 2, 1, 0, 3, 2, 1, 0)]
    assert got[8] == d(False, 10, 2, T0 + 1000, 750)
    assert l2.calls["fixed_window"] == 3


def test_one_lease_in_flight_per_key() -> None:
    clock = tk.ManualClock(T0)
    l2 = Counting(clock)

    async def main() -> list[tk.Decision]:
        async with TwoTierLimiter(tk.FixedWindow(100, 1000), store=l2, batch=10, clock=clock) as tt:
            return await tt.check_many(["k"] * 10)

    got = run(main())
    assert l2.calls["fixed_window"] == 1
    assert sorted(x.remaining for x in got) == list(range(10))
    assert all(x.allowed for x in got)


def test_window_coupled_discards_credits_at_the_l2_window_end() -> None:
    async def main(coupled: bool) -> tuple[tk.Decision, int]:
        clock = tk.ManualClock(T0)
        l2 = Counting(clock)
        async with TwoTierLimiter(
            tk.FixedWindow(10, 1000), store=l2, batch=5, window_coupled=coupled, clock=clock
        ) as tt:
            await tt.check("k")  # credits 4 left
            clock.set(T0 + 1000)
            return await tt.check("k"), l2.calls["fixed_window"]

    # coupled: the 4 credits are dropped, a fresh lease of 5 in the new window, 4 left
    assert run(main(True)) == (d(True, 10, 4, T0 + 2000, 0), 2)
    # carry-over: the old credits are spent in the new window (reset_at still the old window's end)
    assert run(main(False)) == (d(True, 10, 3, T0 + 1000, 0), 1)


def test_synthesized_allow_before_any_expiry_uses_now_plus_ttl() -> None:
    """A cost above the batch leases exactly the cost: max(batch, cost)."""
    clock = tk.ManualClock(T0 + 10)
    l2 = Counting(clock)

    async def main() -> tk.Decision:
        async with TwoTierLimiter(tk.Gcra(10, 1000, burst=10), store=l2, batch=2, clock=clock) as tt:
            return await tt.check("k", 3)

    # L2 gcra cost 3: T 100, tat = now + 300, reset_at = now + 300; credits 3 - 3 = 0
    assert run(main()) == d(True, 10, 0, T0 + 10 + 300, 0)


def test_cached_deny_answers_locally_until_the_retry() -> None:
    clock = tk.ManualClock(T0)
    l2 = Counting(clock)

    async def main() -> list[tk.Decision]:
        async with TwoTierLimiter(tk.FixedWindow(2, 1000), store=l2, mode="cached-deny", clock=clock) as tt:
            out = [await tt.check("k") for _ in range(3)]
            clock.advance(100)
            out.append(await tt.check("k", 5))
            clock.set(T0 + 1000)
            out.append(await tt.check("k"))
            return out

    got = run(main())
    assert got == [
        d(True, 2, 1, T0 + 1000, 0),
        d(True, 2, 0, T0 + 1000, 0),
        d(False, 2, 0, T0 + 1000, 1000),
        d(False, 2, 0, T0 + 1000, 900),  # local: no L2 call
        d(True, 2, 1, T0 + 2000, 0),
    ]
    assert l2.calls["fixed_window"] == 4


def test_strict_is_the_plain_limiter() -> None:
    clock = tk.ManualClock(T0)

    async def main() -> tuple[list[tk.Decision], list[tk.Decision]]:
        plain = tk.Limiter(tk.Gcra(5, 1000, burst=2), clock=clock)
        async with TwoTierLimiter(tk.Gcra(5, 1000, burst=2), mode="strict", clock=clock) as tt:
            a = [await tt.check("k") for _ in range(3)]
        return a, [plain.check("k") for _ in range(3)]

    a, b = run(main())
    assert a == b


def test_low_water_refills_in_the_background() -> None:
    clock = tk.ManualClock(T0)
    l2 = Counting(clock)

    async def main() -> tuple[float, int]:
        async with TwoTierLimiter(
            tk.FixedWindow(100, 1000), store=l2, batch=5, low_water=2, clock=clock
        ) as tt:
            for _ in range(3):
                await tt.check("k")  # the third leaves 2 credits: a refill starts
            for _ in range(5):
                await asyncio.sleep(0)
            return tt.credits("k"), l2.calls["fixed_window"]

    assert run(main()) == (7, 2)


def test_window_coupled_refill_landing_after_its_window_is_dropped() -> None:
    clock = tk.ManualClock(T0 + 900)
    l2 = Counting(clock)

    async def main() -> tuple[float, tk.Decision]:
        async with TwoTierLimiter(
            tk.FixedWindow(100, 1000), store=l2, batch=5, low_water=4, window_coupled=True, clock=clock
        ) as tt:
            await tt.check("k")  # lease 5, credits 4 <= low water: refill
            l2.after = lambda: clock.set(T0 + 1000)  # the refill's reply lands at the window end
            for _ in range(5):
                await asyncio.sleep(0)
            l2.after = None
            credits = tt.credits("k")
            return credits, await tt.check("k")

    credits, nxt = run(main())
    assert credits == 4  # the late grant added nothing
    # at the window end the 4 old credits are discarded; a fresh lease of 5 in the new window
    assert nxt == d(True, 100, 4, T0 + 2000, 0)


def test_l2_failure_propagates_and_a_failed_refill_is_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    clock = tk.ManualClock(T0)
    l2 = Counting(clock)

    async def main() -> None:
        async with TwoTierLimiter(
            tk.FixedWindow(100, 1000), store=l2, batch=3, low_water=1, clock=clock
        ) as tt:
            await tt.check("k")
            l2.fail = True
            await tt.check("k")  # credits 1: a refill starts and fails quietly
            for _ in range(5):
                await asyncio.sleep(0)
            assert (await tt.check("k")).allowed  # the last local credit
            with pytest.raises(tk.StoreError):
                await tt.check("k")

    with caplog.at_level(logging.WARNING, "throttlekit.two_tier"):
        run(main())
    assert "proactive refill" in caplog.text


def test_idle_keys_are_forgotten() -> None:
    clock = tk.ManualClock(T0)

    async def main() -> tuple[int, float, int]:
        async with TwoTierLimiter(
            tk.FixedWindow(100, 1000), batch=5, return_idle_after_ms=1000, clock=clock
        ) as tt:
            await tt.check("a")
            clock.advance(600)
            await tt.check("b")
            clock.advance(600)
            n = tt.forget_idle()
            return n, tt.credits("a"), tt.credits("b") > 0

    assert run(main()) == (1, 0, True)


def test_l1_key_table_is_bounded() -> None:
    clock = tk.ManualClock(T0)

    async def main() -> int:
        async with TwoTierLimiter(tk.FixedWindow(100, 1000), batch=5, max_keys=8, clock=clock) as tt:
            for i in range(50):
                await tt.check(f"k{i}")
            return max(len(tt._entries), tt.l1.key_count())

    assert run(main()) <= 8


def test_consume_only_and_validation() -> None:
    async def main() -> None:
        async with TwoTierLimiter(tk.FixedWindow(10, 1000), batch=2) as tt:
            with pytest.raises(tk.NotSupportedError):
                await tt.peek("k")
            with pytest.raises(tk.NotSupportedError):
                await tt.forecast("k")
            with pytest.raises(tk.ConfigError):
                await tt.check("k", 0)

    run(main())
    with pytest.raises(tk.ConfigError, match="batch is required for mode leased"):
        TwoTierLimiter(tk.FixedWindow(10, 1000))
    with pytest.raises(tk.ConfigError, match="mode is not a known mode"):
        TwoTierLimiter(tk.FixedWindow(10, 1000), mode="lazy")  # type: ignore[arg-type]
    with pytest.raises(tk.ConfigError, match="batch is out of range, got 0"):
        TwoTierLimiter(tk.FixedWindow(10, 1000), batch=0)


@pytest.mark.parametrize("batch", [1, 5])
def test_no_check_starves_under_contention(batch: int) -> None:
    """16 closed-loop tasks on one key: every check is served, and no unit is leased twice (one lease in
    flight per key; queued checks spend what it brought before anyone leases again)."""
    clock = tk.ManualClock(T0)
    l2 = Counting(clock)

    async def main() -> int:
        async with TwoTierLimiter(tk.FixedWindow(10**9, 1000), store=l2, batch=batch, clock=clock) as tt:

            async def worker() -> int:
                return sum([(await tt.check("k")).allowed for _ in range(200)])

            return sum(await asyncio.gather(*(worker() for _ in range(16))))

    assert run(main()) == 16 * 200
    assert l2.calls["fixed_window"] == 16 * 200 // batch


def test_batch_above_the_limit_is_refused() -> None:
    with pytest.raises(tk.ConfigError, match=r"exceeds the policy.s limit \(5\)"):
        TwoTierLimiter(tk.Gcra(10, 1000, burst=5), batch=6)


def test_checks_queued_behind_a_failed_lease_fail_fast() -> None:
    """An L2 outage costs one failed lease per key, not one per queued check (no timeout pile-up)."""
    clock = tk.ManualClock(T0)
    l2 = Counting(clock)
    l2.fail = True

    async def main() -> list[Any]:
        async with TwoTierLimiter(tk.FixedWindow(100, 1000), store=l2, batch=5, clock=clock) as tt:
            out = await asyncio.gather(*(tt.check("k") for _ in range(5)), return_exceptions=True)
            l2.fail = False
            out.append(await tt.check("k"))  # the next check leases again
            return out

    got = run(main())
    assert [type(x) for x in got[:5]] == [tk.StoreError] * 5
    assert got[5] == d(True, 100, 4, T0 + 1000, 0)
    assert l2.calls["fixed_window"] == 2


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 4),
    batch=st.integers(1, 5),
    limit=st.integers(5, 20),
    coupled=st.booleans(),
    ticks=st.lists(
        st.tuples(st.integers(0, 400), st.lists(st.integers(0, 3), min_size=0, max_size=8)),
        min_size=1,
        max_size=40,
    ),
)
def test_admitted_per_window_bound_on_random_interleavings(
    n: int, batch: int, limit: int, coupled: bool, ticks: list[tuple[int, list[int]]]
) -> None:
    """N instances on one shared memory L2, random arrivals (each tick: a clock step, then concurrent
    checks on random instances): per window <= limit when coupled, <= limit + N(batch - 1) otherwise."""
    batch = min(batch, limit)
    clock = tk.ManualClock(T0)
    l2 = tk.MemoryStore(clock=clock)

    async def main() -> dict[int, int]:
        tiers = [
            TwoTierLimiter(
                tk.FixedWindow(limit, 1000), store=l2, batch=batch, window_coupled=coupled, clock=clock
            )
            for _ in range(n)
        ]
        per: dict[int, int] = {}
        for dt, who in ticks:
            clock.advance(dt)
            ds = await asyncio.gather(*(tiers[i % n].check("k") for i in who))
            w = clock.now_ms() // 1000
            per[w] = per.get(w, 0) + sum(x.allowed for x in ds)
        for t in tiers:
            await t.aclose()
        return per

    per = run(main())
    bound = limit if coupled else limit + n * (batch - 1)
    assert max(per.values()) <= bound
