"""The decision tap and the telemetry hub, in process (no gRPC): every decision path emits one event with
the engine's numbers, an observer cannot change or fail a decision, and the hub's window, top-K, rings
and monotonic totals follow spec 11 on a manual clock."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import throttlekit as tk
from tests._support.redis_server import free_port
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService, redis_store
from throttlekit.server import _telemetry as telemetry
from throttlekit.server._telemetry import (
    DENIAL_RING,
    FLUSH_EVERY,
    LATENCY_RING,
    DecisionEvent,
    SpaceSaving,
    TelemetryHub,
)

NOW = 1_700_000_020_000  # 40 s into an epoch-aligned minute
POLICIES = {
    "api": {"strategy": "fixedWindow", "limit": 3, "period": "1m"},
    "tb": {"strategy": "tokenBucket", "capacity": 2, "refillPerSec": 1},
    "tt": {"strategy": "gcra", "limit": 2, "period": "1m", "twoTier": {"batch": 1}},
    "meter": {"tokenBudget": {"budget": 5, "windowMs": 60000}},
}


def _service(clock: tk.ManualClock, policies: dict[str, Any] = POLICIES, **kw: Any) -> RateLimiterService:
    text = json.dumps({"limiters": policies})
    return RateLimiterService(load_config(text), store=tk.MemoryStore(clock=clock), clock=clock, **kw)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_every_decision_path_emits_one_event_with_the_engines_numbers() -> None:
    clock = tk.ManualClock(NOW)
    svc = _service(clock)
    seen: list[DecisionEvent] = []
    svc.tap.register(seen.append)

    async def go() -> list[Any]:
        out: list[Any] = []
        rt = svc.policy("api")
        out += [rt.check_reply("k", 1) for _ in range(4)]  # the door's inline hot path
        out += await svc.check_many("api", ["a", "b"], 2)
        out.append(await svc.peek("api", "k"))
        out.append(await svc.check("tt", "t", 1))
        for _ in range(3):
            out.append(await svc.debit("meter", "m", 4))
        await svc.aclose()
        return out

    answers = run(go())
    assert [e.op for e in seen] == ["check"] * 4 + ["check_many"] * 2 + ["peek", "check"] + ["debit"] * 3
    assert [e.policy for e in seen] == ["api"] * 7 + ["tt"] + ["meter"] * 3
    assert [e.kind for e in seen] == ["limiter"] * 8 + ["meter"] * 3
    assert [e.allowed for e in seen[:4]] == [True, True, True, False]
    assert [(e.limit, e.remaining) for e in seen[:4]] == [(3, 2), (3, 1), (3, 0), (3, 0)]
    assert seen[3].retry_after_ms == answers[3][4] > 0
    assert [(e.key, e.cost, e.remaining) for e in seen[4:6]] == [("a", 2, 1), ("b", 2, 1)]
    assert seen[6].key == "k" and not seen[6].allowed
    assert seen[8].allowed and not seen[10].allowed
    for e, a in zip(seen[8:], answers[-3:]):
        assert (e.allowed, e.limit, e.remaining, e.reset_at, e.retry_after_ms) == (
            a.allowed,
            a.limit,
            a.remaining,
            a.reset_at,
            a.retry_after_ms,
        )
    assert all(e.at_ms == NOW and e.latency_ns > 0 and not e.synthesized and not e.shadow for e in seen)


def test_an_untapped_service_emits_nothing_and_unregister_stops_events() -> None:
    clock = tk.ManualClock(NOW)
    svc = _service(clock)
    seen: list[DecisionEvent] = []
    unregister = svc.tap.register(seen.append)
    svc.policy("api").check_reply("k", 1)
    unregister()
    unregister()  # idempotent
    svc.policy("api").check_reply("k", 1)
    assert len(seen) == 1 and svc.tap.observers == ()


def test_on_the_wall_clock_an_events_time_is_the_wall_time_and_its_latency_its_own() -> None:
    """Without a service clock the tap derives ``at_ms`` from the monotonic reading that times the
    decision (the epoch offset read again every second): it must read as the wall clock does, including
    after the offset is due again, and the latency must be the decision's own."""
    import time

    svc = RateLimiterService(load_config(json.dumps({"limiters": POLICIES})), store=tk.MemoryStore())
    seen: list[DecisionEvent] = []
    svc.tap.register(seen.append)
    before = time.time_ns() // 1_000_000
    svc.policy("api").check_reply("k", 1)
    svc.tap._resync_at = 0  # the offset is due: the next event reads it again
    svc.tap._offset = -(10**15)  # a stale offset would put the event decades back
    svc.policy("api").check_reply("k", 1)
    after = time.time_ns() // 1_000_000
    assert len(seen) == 2
    for event in seen:
        assert before - 2 <= event.at_ms <= after + 2, (before, event.at_ms, after)
        assert 0 < event.latency_ns < 10**9


def test_an_observer_that_raises_changes_no_decision_and_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    clock = tk.ManualClock(NOW)
    svc, plain = _service(clock), _service(tk.ManualClock(NOW))
    calls: list[DecisionEvent] = []

    def broken(event: DecisionEvent) -> None:
        raise RuntimeError("observer bug")

    svc.tap.register(broken)
    svc.tap.register(calls.append)  # a later observer still runs
    got = [tuple(svc.policy("api").check_reply("k", 1)) for _ in range(5)]
    want = [tuple(plain.policy("api").check_reply("k", 1)) for _ in range(5)]
    assert got == want
    assert svc.tap.errors == 5 and len(calls) == 5
    assert len([r for r in caplog.records if "observer" in r.getMessage()]) == 1  # once per burst


def test_a_store_outage_is_observed_as_synthesized() -> None:
    svc = RateLimiterService(
        load_config(json.dumps({"limiters": {"api": POLICIES["api"]}})),
        store=redis_store(f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.5"),
        fail="closed",
    )
    seen: list[DecisionEvent] = []
    svc.tap.register(seen.append)

    async def go() -> Any:
        try:
            return await svc.check("api", "k")
        finally:
            await svc.aclose()

    d = run(go())
    assert d == tk.Decision(False, 3, 0, 0, 0)
    assert len(seen) == 1 and seen[0].synthesized and not seen[0].allowed


def test_hub_window_totals_topk_and_latency_follow_the_manual_clock() -> None:
    clock = tk.ManualClock(NOW)
    svc = _service(clock)
    hub = TelemetryHub(node_id="127.0.0.1:1", now_ms=clock.now_ms)
    hub.attach(svc)
    rt = svc.policy("api")
    for key in ["a", "a", "a", "a", "b", "c"]:
        rt.check_reply(key, 1)
    snap = hub.snapshot()
    (api,) = [p for p in snap["policies"] if p["name"] == "api"]
    assert [p["name"] for p in snap["policies"]] == ["api", "tb", "tt"]  # limiters; meters apart
    assert [m["name"] for m in snap["meters"]] == ["meter"]
    a = api["analytics"]
    assert (a["allowed"], a["denied"], a["total"]) == (5, 1, 6)
    assert a["windowStartedAt"] == NOW - NOW % 60_000
    assert a["topRequested"] == [{"key": "a", "count": 4}, {"key": "b", "count": 1}, {"key": "c", "count": 1}]
    assert a["topDenied"] == [{"key": "a", "count": 1}]
    assert api["limit"] == 3 and api["strategy"] == "fixedWindow"
    assert api["latency"]["n"] == 6 and api["latency"]["p99Ms"] >= api["latency"]["p50Ms"] > 0
    assert snap["recentDenials"][0]["decision"]["remaining"] == 0
    assert snap["recentDenials"][0]["key"] == "a"

    clock.advance(20_000)  # the next epoch-aligned window: window figures restart, totals do not
    rt.check_reply("z", 1)
    (api,) = [p for p in hub.snapshot()["policies"] if p["name"] == "api"]
    assert (api["analytics"]["allowed"], api["analytics"]["denied"]) == (1, 0)
    assert api["totals"] == {"allowed": 6, "denied": 1, "shadowDenied": 0, "synthesized": 0}
    clock.advance(60_000)  # a window with no traffic reads zeros
    (api,) = [p for p in hub.snapshot()["policies"] if p["name"] == "api"]
    assert api["analytics"]["total"] == 0 and api["totals"]["allowed"] == 6
    json.dumps(hub.snapshot())


def test_hub_rings_are_bounded() -> None:
    hub = TelemetryHub(now_ms=lambda: NOW)
    hub.track("p", "limiter", "gcra")
    for i in range(DENIAL_RING + LATENCY_RING):
        hub(DecisionEvent("p", "limiter", "check", f"k{i}", 1, False, 1, 0, 0, 5, NOW, 1000))
    snap = hub.snapshot()
    assert len(snap["recentDenials"]) == DENIAL_RING
    assert snap["recentDenials"][-1]["key"] == f"k{DENIAL_RING + LATENCY_RING - 1}"  # oldest first
    assert snap["recentDenials"][0]["key"] == f"k{LATENCY_RING}"
    assert snap["policies"][0]["latency"]["n"] == LATENCY_RING
    assert len(snap["policies"][0]["analytics"]["topDenied"]) == 10


def test_space_saving_keeps_heavy_hitters_with_upper_bound_counts() -> None:
    ss = SpaceSaving(3)
    stream = ["h"] * 50 + [f"u{i}" for i in range(40)] + ["g"] * 30 + [f"v{i}" for i in range(20)]
    for k in stream:
        ss.add(k)
    top = dict(ss.top())
    assert len(top) == 3
    assert top["h"] >= 50 and top["g"] >= 30  # every key above total/k is present, never undercounted
    assert sum(top.values()) == len(stream)


def test_hub_subscriber_failures_never_reach_the_decision() -> None:
    clock = tk.ManualClock(NOW)
    svc = _service(clock)
    hub = TelemetryHub(now_ms=clock.now_ms)
    hub.attach(svc)
    got: list[str] = []

    def bad(e: DecisionEvent) -> None:
        raise ValueError("x")

    hub.subscribe(bad)
    unsubscribe = hub.subscribe(lambda e: got.append(e.key))
    rt = svc.policy("tb")
    assert [rt.check_reply("k", 1)[0] for _ in range(3)] == [True, True, False]
    unsubscribe()
    rt.check_reply("k", 1)
    assert got == ["k"] and svc.tap.errors == 0


# -- the hub as a tap's sink: batches leave the same figures as event by event -------------------------


def _reference_merge(counts: dict[str, int], k: int, batch: dict[str, int]) -> dict[str, int]:
    """The mergeable-summary rule written out directly (the oracle for SpaceSaving.merge)."""
    if len(counts) + len(batch) <= k:
        out = dict(counts)
        for key, n in batch.items():
            out[key] = out.get(key, 0) + n
        return out
    floor = min(counts.values()) if len(counts) >= k else 0
    combined = dict(counts)
    for key, n in batch.items():
        combined[key] = counts.get(key, floor) + n
    return dict(sorted(combined.items(), key=lambda kv: kv[1], reverse=True)[:k])


_keys = st.sampled_from([f"k{i}" for i in range(30)])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.dictionaries(_keys, st.integers(1, 6), max_size=25), max_size=6),
    st.integers(1, 12),
)
def test_space_saving_merge_is_the_summary_rule(batches: list[dict[str, int]], k: int) -> None:
    ss, want = SpaceSaving(k), {}
    for batch in batches:
        ss.merge(batch)
        want = _reference_merge(want, k, batch)
        assert list(ss.counts.items()) == list(want.items())  # same keys, counts and order


def _event_fields() -> Any:
    return st.tuples(
        st.sampled_from(["p", "q", "adm", "m"]),
        st.sampled_from(["check", "check", "check", "peek", "admit"]),
        st.sampled_from([f"k{i}" for i in range(40)]),
        st.booleans(),  # allowed
        st.integers(0, 9),  # limit
        st.integers(0, 90_000),  # ms after NOW: windows roll inside a batch
        st.integers(1, 10_000),  # latency
        st.booleans(),  # synthesized
        st.booleans(),  # shadow
        st.sampled_from(["", "rate", "concurrency", "cost", "bogus"]),
    )


_KINDS = {"p": "limiter", "q": "limiter", "adm": "admitter", "m": "meter"}


def _state(hub: TelemetryHub) -> Any:
    hub.drain()
    stats = {
        n: (dataclasses.replace(s, latencies=list(s.latencies)), s.latencies) for n, s in hub.policies.items()
    }
    figures = {
        n: {
            f.name: getattr(s, f.name)
            for f in dataclasses.fields(s)
            if f.name not in ("top_requested", "top_denied", "top_denied_by_lane")
        }
        for n, (s, _) in stats.items()
    }
    tops = {
        n: (
            s.top_requested.counts,
            s.top_denied.counts,
            {lane: t.counts for lane, t in s.top_denied_by_lane.items()},
        )
        for n, (s, _) in stats.items()
    }
    return figures, tops, [tuple(e) for e in hub.denials]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_event_fields(), max_size=400),
    st.lists(st.integers(1, 300), min_size=1, max_size=8),
    st.sampled_from([3, 7, FLUSH_EVERY]),
)
def test_a_batched_hub_leaves_the_figures_of_an_event_by_event_hub(
    events: list[Any], cuts: list[int], flush_every: int
) -> None:
    """Any stream of events (several policies and kinds, peeks, denials, windows rolling mid-batch, top-K
    flushes inside a batch: the buffer is made small) fed in batches of any sizes leaves every figure,
    top-K summary and the ring of denials equal to the same stream fed event by event."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(telemetry, "FLUSH_EVERY", flush_every)
        _same_figures(events, cuts)


def _same_figures(events: list[Any], cuts: list[int]) -> None:
    one = TelemetryHub(now_ms=lambda: NOW)
    batched = TelemetryHub(now_ms=lambda: NOW)
    for hub in (one, batched):
        hub.track("p", "limiter", "gcra")
        hub.track("adm", "admitter")
    stream = [
        DecisionEvent(pol, _KINDS[pol], op, key, 1, ok, limit, 0, 0, 5, NOW + dt, lat, syn, sh, axis)
        for pol, op, key, ok, limit, dt, lat, syn, sh, axis in sorted(events, key=lambda e: e[5])
    ]
    for e in stream:
        one(e)
    i, c = 0, 0
    while i < len(stream):
        n = cuts[c % len(cuts)]
        batched.absorb([tuple(e) for e in stream[i : i + n]])  # plain tuples, as the tap queues them
        i, c = i + n, c + 1
    assert _state(batched) == _state(one)


def test_an_attached_hub_reads_every_decision_and_watchers_get_denials_as_they_happen() -> None:
    """The hub takes a service's decisions in batches; a read drains the batch first, so a snapshot
    counts every decision made so far, and a subscriber sees each denial inline, before any read."""
    clock = tk.ManualClock(NOW)
    svc = _service(clock)
    hub = TelemetryHub(now_ms=clock.now_ms)
    stop = hub.attach(svc)
    rt = svc.policy("api")
    for _ in range(5):
        rt.check_reply("k", 1)
    assert len(svc.tap._batch) == 5  # not yet folded...
    (api,) = [p for p in hub.snapshot()["policies"] if p["name"] == "api"]
    assert (api["analytics"]["allowed"], api["analytics"]["denied"]) == (3, 2)  # ...but read
    assert svc.tap._batch == []
    seen: list[str] = []
    unsubscribe = hub.subscribe(lambda e: seen.append(e.key))
    rt.check_reply("x", 1)  # allowed: nothing
    rt.check_reply("k", 1)
    assert seen == ["k"]  # inline, no read in between
    unsubscribe()
    rt.check_reply("k", 1)
    assert seen == ["k"] and svc.tap.observers == ()
    stop()
    assert svc.tap.sinks == () and not svc.tap.active
    (api,) = [p for p in hub.snapshot()["policies"] if p["name"] == "api"]
    assert api["analytics"]["denied"] == 4  # unregistering drained what was pending


def test_a_hub_read_from_another_thread_loses_no_decision() -> None:
    """Decisions on one thread, snapshots on another (a threaded server read from outside its loop):
    every decision is counted once, however the drains interleave with the appends."""
    svc = _service(tk.ManualClock(NOW))
    hub = TelemetryHub(now_ms=lambda: NOW)
    hub.attach(svc)
    n, done = 20_000, threading.Event()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows

    def read() -> None:
        while not done.is_set():
            hub.snapshot()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(n):
            svc.tap.observe("api", "limiter", "check", f"k{i % 10}", 1, (1, 3, 2, NOW, 0), 1, False, False)
    finally:
        done.set()
        reader.join()
        sys.setswitchinterval(old)
    (api,) = [p for p in hub.snapshot()["policies"] if p["name"] == "api"]
    assert api["totals"]["allowed"] == n
    assert sum(c["count"] for c in api["analytics"]["topRequested"]) == n  # 10 keys: exact counts


def test_a_reload_folds_the_pending_decisions_before_forgetting_a_removed_policy() -> None:
    """Decisions still in the tap's batch when a reload removes their policy are folded into it before
    it is forgotten: the policy does not come back as a ghost on the next read, and the kept one keeps
    its figures."""
    clock = tk.ManualClock(NOW)
    svc = _service(clock)
    hub = TelemetryHub(now_ms=clock.now_ms)
    hub.attach(svc)
    for _ in range(4):
        svc.policy("api").check_reply("k", 1)
        svc.policy("tb").check_reply("k", 1)
    assert len(svc.tap._batch) == 8  # pending
    svc.reload(load_config(json.dumps({"limiters": {"api": POLICIES["api"]}})))
    hub.sync_policies(svc)  # what the server does after a reload
    names = [p["name"] for p in hub.snapshot()["policies"]]
    assert names == ["api"]
    (api,) = hub.snapshot()["policies"]
    assert (api["analytics"]["allowed"], api["analytics"]["denied"]) == (3, 1)
