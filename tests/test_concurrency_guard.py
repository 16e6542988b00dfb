"""The concurrency guard on the bound fast path (one bound call per acquire and per release, replies read
by the manifest's names, the release ticket round-tripping through Redis as bytes), the minRTT
recalibration probe (spec 9.2) end to end on a manual clock, and the strict validation of the new
config fields (``recalibration``, ``handoff``, ``eagerHandoff``, ``minHeartbeatMs``, ``allocation``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import throttlekit as tk
from throttlekit.admission import Admitter
from throttlekit.concurrency import ConcurrencyGuard, Coordinator, concurrency_params
from throttlekit.config import load_config


class _CountingStore:
    """A memory store that counts generic ``eval`` calls and ``bind`` calls (the fast path binds once)."""

    def __init__(self, clock: Any) -> None:
        self.inner = tk.MemoryStore(clock=clock)
        self.prefix = ""
        self.inline = True
        self.clock = clock
        self.evals = 0
        self.binds: list[str] = []

    def eval(self, name: str, keys: Any, now_ms: float, args: Any) -> Any:
        self.evals += 1
        return self.inner.eval(name, keys, now_ms, args)

    def bind(self, name: str, params: Any, *, guarded: bool = True) -> Any:
        self.binds.append(name)
        return self.inner.bind(name, params, guarded=guarded)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()


def test_acquire_and_release_are_one_bound_call_each() -> None:
    clock = tk.ManualClock(1000)
    store = _CountingStore(clock)
    guard = ConcurrencyGuard(concurrency_params(min_limit=2, max_limit=2), store=store, clock=clock)
    binds = len(store.binds)  # three release modes and the uncapped acquire, bound up front
    assert sorted(store.binds) == ["conc_acquire", "conc_release", "conc_release", "conc_release"]
    g1, g2 = guard.acquire(), guard.acquire()
    assert (g1.slot, g2.slot, g1.ticket) == (1, 2, "1000 1 0")
    assert not guard.acquire().decision.allowed
    clock.advance(30)
    st = guard.release(g1)
    assert (st.limit, st.inflight, st.rtt_noload, st.last_rtt) == (2, 1, 30, 30)
    guard.release(g2, dropped=True)
    assert store.evals == 0 and len(store.binds) == binds
    guard.acquire(cap=1)  # a fleet share: bound once per distinct cap, then reused
    guard.acquire(cap=1)
    assert store.evals == 0 and store.binds[binds:] == ["conc_acquire"]


def test_a_bad_ticket_is_a_script_error_naming_the_ticket() -> None:
    guard = ConcurrencyGuard(concurrency_params(min_limit=2, max_limit=2))
    grant = guard.acquire()
    with pytest.raises(tk.ScriptError, match='ticket must be "<start_ms> <slot> <probe id>", got "nonsense"'):
        guard.release(grant._replace(ticket="nonsense"))


@pytest.mark.redis
@pytest.mark.parametrize("transport", ["client", "url"])
def test_the_guard_on_redis_round_trips_its_ticket_as_bytes(
    transport: str, redis_store: tk.RedisStore
) -> None:
    """Through redis-py (a client object) and through the store's own sockets (a URL: hiredis, the
    packed bound call), the ticket comes back as bytes and goes out again as the last ARGV."""
    from tests._support.env import REAL_REDIS, REDIS_URL

    store = redis_store
    if transport == "url":
        if REAL_REDIS is None:
            pytest.skip(f"the URL transport needs a real Redis at {REDIS_URL}")
        store = tk.RedisStore(url=REDIS_URL, prefix=redis_store.prefix)
    clock = tk.ManualClock(5000)
    try:
        guard = ConcurrencyGuard(
            concurrency_params(min_limit=3, max_limit=3), store=store, key="g", clock=clock
        )
        grant = guard.acquire()
        assert grant.decision.allowed and grant.slot == 1 and grant.start_ms == 5000
        assert grant.ticket in (b"5000 1 0", "5000 1 0")
        clock.advance(40)
        st = guard.release(grant)
        assert (st.limit, st.inflight, st.rtt_noload, st.last_rtt) == (3, 0, 40, 40)
        guard.reset()
    finally:
        if store is not redis_store:
            store.close()


def _sample(adm: Admitter, clock: tk.ManualClock, rtt: int) -> None:
    a = adm.admit()
    assert a.allowed
    clock.advance(rtt)
    a.release()


def test_recalibration_relearns_the_baseline_after_a_latency_step() -> None:
    """gradient2 learns 20 ms as no-load; the backend steps to 80 ms. Without recalibration the window
    minimum remembers 20 ms for rttWindow samples and the limit sinks to minLimit; with it, a probe
    (interval 1 s) measures 80 ms at low concurrency and the baseline moves, so growth resumes."""

    def run(recal: Any) -> tuple[int, int]:
        clock = tk.ManualClock(0)
        extra = {} if recal is None else {"recalibration": recal}
        params = concurrency_params(min_limit=2, max_limit=50, initial_limit=20, rtt_window=1000, **extra)
        adm = Admitter(params, clock=clock)
        for _ in range(50):
            _sample(adm, clock, 20)
        for _ in range(200):  # the step: 80 ms, one at a time (slot 1 of a limit >= 2: no growth signal)
            _sample(adm, clock, 80)
        # load: 10 in flight at once, each 80 ms
        for _ in range(100):
            held = [adm.admit() for _ in range(10)]
            clock.advance(80)
            for h in held:
                h.release()
        return adm.guard.rtt_noload, adm.limit

    assert run(None) == (20, 4)  # stuck at the fixed point of gradient 0.5: 80 ms looks 4x "no load"
    noload, limit = run({"intervalMs": 1000, "probeLimit": 1, "probeSamples": 3})
    assert noload == 80 and limit > 10


def test_a_probe_caps_admission_at_probe_limit_and_keeps_the_learned_limit() -> None:
    clock = tk.ManualClock(0)
    params = concurrency_params(min_limit=4, max_limit=4, recalibration={"intervalMs": 100, "probeLimit": 2})
    adm = Admitter(params, clock=clock)
    _sample(adm, clock, 10)  # baseline phase starts
    clock.advance(100)
    _sample(adm, clock, 10)  # settled 110 ms later: the probe starts
    held = [adm.admit() for _ in range(4)]
    assert [h.allowed for h in held] == [True, True, False, False]
    assert held[2].decision.limit == 2 and adm.limit == 4 and held[2].binding_axis == "concurrency"


def test_recalibration_defaults_and_validation() -> None:
    p = concurrency_params(min_limit=3, max_limit=9, recalibration={})
    assert (p.recal_interval_ms, p.probe_limit, p.probe_samples) == (30_000, 3, 10)
    assert "recalibrating every 30000 ms (probe 3 in flight, 10 samples)" in p.describe()
    assert concurrency_params().recal_interval_ms == 0
    with pytest.raises(tk.ConfigError) as e:
        concurrency_params(
            max_limit=9,
            recalibration={"intervalMs": 0, "probeLimit": 10, "probeSamples": -1, "probes": 3},
        )
    text = str(e.value)
    assert "recalibration.probes" in text and "is not a recalibration field" in text
    assert len(e.value.errors) == 4
    fields = sorted(err.field for err in e.value.errors)
    assert fields == [
        "recalibration.intervalMs",
        "recalibration.probeLimit",
        "recalibration.probeSamples",
        "recalibration.probes",
    ]
    with pytest.raises(tk.ConfigError, match="recalibration"):
        concurrency_params(recalibration=True)


def _load(block: dict[str, Any], kind: str = "distributedConcurrency") -> Any:
    return load_config(json.dumps({"limiters": {"p": {kind: block}}}))


def test_fleet_handoff_fields_are_validated_strictly() -> None:
    cfg = _load({"minLimit": 4, "maxLimit": 4, "heartbeatMs": 500, "handoff": True, "eagerHandoff": True})
    pol = cfg.policies["p"]
    assert (pol.handoff, pol.eager_handoff, pol.min_heartbeat_ms) == (True, True, 50)
    assert "acknowledged handoff, eager beats (at most one per 50 ms)" in pol.describe()
    pol = _load({"eagerHandoff": True, "minHeartbeatMs": 20}).policies["p"]
    assert (pol.handoff, pol.min_heartbeat_ms) == (False, 20)
    cases = [
        ({"handoff": "yes"}, "handoff: must be true or false"),
        ({"eagerHandoff": 1}, "eagerHandoff: must be true or false"),
        ({"minHeartbeatMs": 10}, "minHeartbeatMs: has no effect without eagerHandoff: true"),
        (
            {"eagerHandoff": True, "heartbeatMs": 100, "minHeartbeatMs": 101},
            "minHeartbeatMs: is above heartbeatMs",
        ),
        ({"eagerHandoff": True, "minHeartbeatMs": 0}, "minHeartbeatMs"),
    ]
    for block, message in cases:
        with pytest.raises(tk.ConfigError, match=message):
            _load(block)
    with pytest.raises(tk.ConfigError, match="unknown key in concurrency"):
        _load({"handoff": True}, kind="concurrency")  # a fleet field on a per-process guard


def test_fleet_allocation_is_validated_strictly() -> None:
    assert _load({}).policies["p"].allocation == "equal-split"
    pol = _load({"allocation": "demand-proportional", "aggregate": "min"}).policies["p"]
    assert pol.allocation == "demand-proportional"
    assert "min across the fleet, demand-proportional" in pol.describe()
    for bad in ("demand", "Demand-Proportional", "", 1, None, ["equal-split"]):
        with pytest.raises(tk.ConfigError) as e:
            _load({"allocation": bad})
        text = str(e.value)
        assert "distributedConcurrency.allocation: is not a known allocation" in text, text
        assert f"(got {bad!r})" in text and "allowed: equal-split, demand-proportional" in text
    with pytest.raises(tk.ConfigError, match="unknown key in concurrency"):
        _load({"allocation": "equal-split"}, kind="concurrency")  # a fleet field on a per-process guard
    # the embedded coordinator checks it before any report
    with pytest.raises(tk.ConfigError, match='did you mean "demand-proportional"'):
        Coordinator(tk.MemoryStore(), "k", "n1", allocation="proportional")
    coord = Coordinator(tk.MemoryStore(), "k", "n1", allocation="demand-proportional")
    assert coord.heartbeat(5, 0, 1000, 1000).share == 5


@pytest.mark.parametrize("bad", ["fair", "", "0"])
@pytest.mark.parametrize("where", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_conc_heartbeat_validates_its_allocation_in_lua(
    bad: str, where: str, request: pytest.FixtureRequest
) -> None:
    """The transform itself refuses an unknown allocation (a caller bypassing the Python check) and writes
    nothing."""
    store = tk.MemoryStore() if where == "memory" else request.getfixturevalue("redis_store")
    coord = Coordinator(store, "k", "n1")
    coord.allocation = bad  # bypass the constructor's check
    with pytest.raises(
        tk.ScriptError, match=f'allocation must be "equal-split" or "demand-proportional", got "{bad}"'
    ):
        coord.heartbeat(5, 0, 1000, 1000)
    peer = Coordinator(store, "k", "n2")
    assert peer.heartbeat(5, 0, 1000, 1000).nodes == 1  # the refused report left no entry


def test_recalibration_in_a_policy_file() -> None:
    pol = _load({"minLimit": 2, "maxLimit": 20, "recalibration": {"probeSamples": 5}}, kind="concurrency")
    assert (pol.policies["p"].params.probe_samples, pol.policies["p"].params.probe_limit) == (5, 2)
    with pytest.raises(tk.ConfigError, match=r"recalibration\.probeLimit"):
        _load({"maxLimit": 20, "recalibration": {"probeLimit": 21}}, kind="concurrency")
