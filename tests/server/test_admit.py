"""Admit / Release / Heartbeat through the gRPC door: concurrency, unified rate x concurrency, the lease
lifecycle (TTL, sweep, idempotent release, dropped contraction) and the spec 4.4 matrix. Expectations
are worked out by hand from spec core 9-10 and server 4.4; the clock is manual, the sweep called."""

from __future__ import annotations

import asyncio
import json
import re
import time

import grpc
import pytest

import throttlekit as tk
from tests._support.server import Starter, make_store, pb
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService

T0 = 1_700_000_000_000

POLICIES = {
    "pinned": {"concurrency": {"minLimit": 3, "maxLimit": 3}},
    "single": {"concurrency": {"minLimit": 1, "maxLimit": 1}},
    "unified": {
        "strategy": "gcra",
        "limit": 5,
        "period": "1s",
        "burst": 5,
        "concurrency": {"minLimit": 2, "maxLimit": 2},
    },
    "adaptive": {"concurrency": {"minLimit": 1, "maxLimit": 200, "initialLimit": 100}},
    "rate": {"strategy": "fixedWindow", "limit": 10, "windowMs": 1000},
    "budget": {"tokenBudget": {"budget": 5, "windowMs": 1000}},
    "leased": {"strategy": "fixedWindow", "limit": 10, "windowMs": 1000, "twoTier": {"batch": 2}},
}


def _d(x: object) -> tuple[bool, int, int, int, int]:
    return (x.allowed, x.limit, x.remaining, x.reset_at, x.retry_after_ms)  # type: ignore[attr-defined]


def _admit(s: object, policy: str, key: str = "k") -> object:
    return s.stub.Admit(pb.AdmitRequest(policy=policy, key=key), timeout=10)  # type: ignore[attr-defined]


def _release(s: object, lease_id: str, dropped: bool = False) -> None:
    s.stub.Release(pb.ReleaseRequest(lease_id=lease_id, dropped=dropped), timeout=10)  # type: ignore[attr-defined]


def test_a_pinned_policy_holds_at_most_its_cap_and_release_is_idempotent(start_server: Starter) -> None:
    clock = tk.ManualClock(T0)
    s = start_server(POLICIES, store=make_store("memory", clock), clock=clock)
    held = [_admit(s, "pinned") for _ in range(3)]
    assert [_d(a.decision) for a in held] == [(True, 3, 2, T0, 0), (True, 3, 1, T0, 0), (True, 3, 0, T0, 0)]
    assert all(a.lease_expires_at == T0 + 2000 and a.binding_axis == "" for a in held)  # type: ignore[attr-defined]
    ids = [a.lease_id for a in held]  # type: ignore[attr-defined]
    assert len(set(ids)) == 3 and all(re.fullmatch(r"[0-9a-f]{16}\.\d+", i) for i in ids)
    denied = _admit(s, "pinned")
    # a denial holds nothing: no lease, no expiry; retry = max(1, round(lastRtt)) = 1 before any sample
    assert _d(denied.decision) == (False, 3, 0, T0, 1)  # type: ignore[attr-defined]
    assert (denied.lease_id, denied.lease_expires_at, denied.binding_axis) == ("", 0, "concurrency")  # type: ignore[attr-defined]
    clock.set(T0 + 40)
    _release(s, ids[0])
    _release(s, ids[0])  # idempotent: the slot is returned once
    _release(s, "never-minted")
    _release(s, "")
    assert _d(_admit(s, "pinned").decision) == (True, 3, 0, T0 + 40, 0)  # type: ignore[attr-defined]
    assert _d(_admit(s, "pinned").decision) == (False, 3, 0, T0 + 40, 40)  # type: ignore[attr-defined]


def test_heartbeat_renews_and_the_sweep_reclaims_a_lapsed_lease(start_server: Starter) -> None:
    clock = tk.ManualClock(T0)
    s = start_server(POLICIES, store=make_store("memory", clock), clock=clock, lease_ttl_ms=2000)
    a, b = _admit(s, "single"), _admit(s, "pinned")
    assert a.lease_expires_at == T0 + 2000  # type: ignore[attr-defined]
    clock.set(T0 + 1500)
    beat = s.stub.Heartbeat(pb.HeartbeatRequest(lease_ids=[a.lease_id, "gone"]), timeout=10)  # type: ignore[attr-defined]
    assert (list(beat.live_ids), list(beat.reclaimed_ids), beat.next_deadline) == (
        [a.lease_id],
        ["gone"],
        T0 + 3500,
    )  # type: ignore[attr-defined]
    clock.set(T0 + 2000)
    assert s.service.sweep() == 1  # b lapsed at T0 + 2000 (deadline <= now); a was renewed
    assert _admit(s, "single").decision.allowed is False  # type: ignore[attr-defined]
    clock.set(T0 + 3500)
    assert s.service.sweep() == 1
    beat = s.stub.Heartbeat(pb.HeartbeatRequest(lease_ids=[a.lease_id, b.lease_id]), timeout=10)  # type: ignore[attr-defined]
    assert list(beat.live_ids) == [] and list(beat.reclaimed_ids) == [a.lease_id, b.lease_id]  # type: ignore[attr-defined]
    assert _admit(s, "single").decision.allowed is True  # type: ignore[attr-defined]
    _release(s, a.lease_id)  # releasing a reclaimed lease is a no-op: the slot is not returned twice
    assert _admit(s, "single").decision.allowed is False  # type: ignore[attr-defined]


def test_dropped_release_contracts_the_adaptive_limit(start_server: Starter) -> None:
    clock = tk.ManualClock(T0)
    s = start_server(POLICIES, store=make_store("memory", clock), clock=clock)
    a = _admit(s, "adaptive")
    assert a.decision.limit == 100  # type: ignore[attr-defined]
    clock.set(T0 + 10)
    _release(s, a.lease_id, dropped=True)  # type: ignore[attr-defined]
    # gradient2, dropped: n = 100*0.5 + sqrt(100) = 60; EMA 100*0.8 + 60*0.2 = 92
    assert _d(_admit(s, "adaptive").decision) == (True, 92, 91, T0 + 10, 0)  # type: ignore[attr-defined]


def test_unified_admits_only_when_both_axes_admit_and_names_the_binding_axis(
    start_server: Starter, store_kind: str
) -> None:
    clock = tk.ManualClock(T0)
    s = start_server(POLICIES, store=make_store(store_kind, clock), clock=clock)
    # gcra 5/s burst 5 (T = 200 ms) x concurrency 2. Combined: min limit/remaining, max reset/retry.
    a = _admit(s, "unified", "u")
    assert _d(a.decision) == (True, 2, 1, T0 + 200, 0)  # type: ignore[attr-defined]
    b = _admit(s, "unified", "u")
    assert _d(b.decision) == (True, 2, 0, T0 + 400, 0)  # type: ignore[attr-defined]
    c = _admit(s, "unified", "u")  # concurrency denies first: the rate axis is not consulted
    assert (c.binding_axis, c.lease_id, _d(c.decision)) == ("concurrency", "", (False, 2, 0, T0, 1))  # type: ignore[attr-defined]
    for adm in (a, b):
        _release(s, adm.lease_id)  # type: ignore[attr-defined]
    for n in range(3):  # rate tokens 3, 4, 5 of the burst
        adm = _admit(s, "unified", "u")
        assert adm.decision.allowed, n  # type: ignore[attr-defined]
        _release(s, adm.lease_id)  # type: ignore[attr-defined]
    d = _admit(s, "unified", "u")  # the burst is spent: rate denies and the slot goes back unused
    assert (d.binding_axis, d.lease_id, _d(d.decision)) == ("rate", "", (False, 2, 0, T0 + 1000, 200))  # type: ignore[attr-defined]
    assert [_admit(s, "unified", "other").decision.allowed for _ in range(2)] == [True, True]  # type: ignore[attr-defined]


def test_operation_by_kind_matrix(start_server: Starter) -> None:
    clock = tk.ManualClock(T0)
    s = start_server(POLICIES, store=make_store("memory", clock), clock=clock)
    unimplemented = grpc.StatusCode.UNIMPLEMENTED
    for admitter in ("pinned", "unified"):
        assert s.code_of("Check", pb.CheckRequest(policy=admitter, key="k")) == unimplemented
        assert s.code_of("CheckMany", pb.CheckManyRequest(policy=admitter, keys=["k"])) == unimplemented
        assert s.code_of("Peek", pb.PeekRequest(policy=admitter, key="k")) == unimplemented
        assert s.code_of("Forecast", pb.ForecastRequest(policy=admitter, key="k")) == unimplemented
        assert s.code_of("Debit", pb.DebitRequest(policy=admitter, key="k")) == unimplemented
    for other in ("rate", "budget", "leased"):
        assert s.code_of("Admit", pb.AdmitRequest(policy=other, key="k")) == unimplemented
    with pytest.raises(grpc.RpcError) as info:
        s.stub.Admit(pb.AdmitRequest(policy="rate", key="k"), timeout=10)
    assert info.value.details() == 'policy "rate" does not support admit'
    assert s.code_of("Admit", pb.AdmitRequest(policy="nope", key="k")) == grpc.StatusCode.NOT_FOUND
    assert (
        s.code_of("Admit", pb.AdmitRequest(policy="pinned", key="k", cost=-1))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert s.code_of("Release", pb.ReleaseRequest(lease_id="x" * 200)) == grpc.StatusCode.INVALID_ARGUMENT


def test_lease_ids_differ_across_restarts() -> None:
    text = '{"limiters": {"c": {"concurrency": {"minLimit": 1, "maxLimit": 1}}}}'
    a, b = RateLimiterService(load_config(text)), RateLimiterService(load_config(text))
    assert a.leases.token != b.leases.token
    lease = a.leases.mint(None, None)  # type: ignore[arg-type]
    assert b.leases.pop(lease.id) is None


def test_distributed_concurrency_on_memory_is_refused_at_load() -> None:
    text = '{"limiters": {"fleet": {"distributedConcurrency": {"minLimit": 12, "maxLimit": 12}}}}'
    with pytest.raises(tk.ConfigError) as info:
        RateLimiterService(load_config(text))
    assert str(info.value).startswith(
        "config.limiters[fleet].distributedConcurrency: needs a shared coordinator store — run with --redis or "
        "--postgres (memory / dynamodb cannot coordinate concurrency"
    )


def test_our_clients_admit_with_heartbeats_and_see_reclaimed_leases(start_server: Starter) -> None:
    s = start_server(POLICIES, lease_ttl_ms=300, sweep_s=0.05)
    with tk.ServiceBackend(s.target, timeout=5, heartbeat_interval=0.05) as c:
        with c.admit("single", "k", heartbeat=True) as a:
            assert a.allowed and a.held
            time.sleep(0.9)  # three TTLs, kept by the beats
            assert not a.reclaimed and not c.admit("single", "k").allowed
        assert c.admit("single", "k").allowed  # the block's exit released it (that one is now held)
        b = c.admit("pinned", "k", heartbeat=True)
        s.service.release(b.lease_id)  # the server lets go of it (as a sweep would)
        deadline = time.monotonic() + 5
        while not b.reclaimed and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b.reclaimed

    async def run() -> None:
        async with tk.AsyncServiceBackend(s.target, timeout=5, heartbeat_interval=0.05) as ac:
            async with await ac.admit("pinned", "k", heartbeat=True) as x:
                assert x.allowed
                await asyncio.sleep(0.9)
                assert not x.reclaimed
            with pytest.raises(ValueError):
                async with await ac.admit("pinned", "k"):
                    raise ValueError

    asyncio.run(run())


def test_admits_reach_the_decision_tap() -> None:
    async def run() -> None:
        clock = tk.ManualClock(T0)
        service = RateLimiterService(load_config(json.dumps({"limiters": POLICIES})), clock=clock)
        events: list[object] = []
        service.tap.register(events.append)
        ok = await service.admit("unified", "u")
        await service.admit("unified", "u")
        await service.admit("unified", "u")  # concurrency binds
        service.release(ok.lease_id)
        got = [(e.policy, e.kind, e.op, e.key, e.allowed, e.axis) for e in events]  # type: ignore[attr-defined]
        assert got == [
            ("unified", "admitter", "admit", "u", True, ""),
            ("unified", "admitter", "admit", "u", True, ""),
            ("unified", "admitter", "admit", "u", False, "concurrency"),
        ]
        stats = service.policies["pinned"].guard_stats()
        assert stats == {
            "name": "pinned",
            "limit": 3,
            "inflight": 0,
            "share": 3.0,
            "l_global": 3,
            "nodes": 1,
            "fenced": False,
        }
        await service.aclose()

    asyncio.run(run())


def test_leases_of_a_policy_retired_by_a_reload_release_and_sweep_quietly() -> None:
    async def run() -> None:
        clock = tk.ManualClock(T0)
        service = RateLimiterService(load_config(json.dumps({"limiters": POLICIES})), clock=clock)
        held = await service.admit("single", "k")
        changed = {**POLICIES, "single": {"concurrency": {"minLimit": 2, "maxLimit": 2}}}
        report = service.reload(load_config(json.dumps({"limiters": changed})))
        assert report.changed == ("single",)
        for rt in report.retired:
            await rt.aclose()
        assert (await service.admit("single", "k")).decision.limit == 2  # a fresh guard
        lapsing = await service.admit("pinned", "k")
        assert service.release(held.lease_id)  # its guard is gone: a quiet no-op, not an error
        changed["pinned"] = {"concurrency": {"minLimit": 5, "maxLimit": 5}}
        for rt in service.reload(load_config(json.dumps({"limiters": changed}))).retired:
            await rt.aclose()
        clock.advance(2000)
        assert service.sweep() >= 1 and lapsing.lease_id not in service.leases._leases
        await service.aclose()

    asyncio.run(run())
