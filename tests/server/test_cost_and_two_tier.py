"""Debit on tokenBudget / fleetBudget and Check on twoTier through the gRPC door (expectations by hand)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

import throttlekit as tk
from tests._support.server import Starter, async_redis_store, make_store, pb
from throttlekit.config import FleetBudgetPolicy, TokenBudgetPolicy, TwoTierPolicy, load_config
from throttlekit.server import RateLimiterService

T0 = 1_700_000_000_000  # a multiple of 1000 and of 60000

POLICIES = {
    "budget": {"tokenBudget": {"budget": 5, "windowMs": 1000}},
    "fleet": {"fleetBudget": {"budget": 5, "windowMs": 1000, "prefix": "fb"}},
    "leased": {
        "strategy": "fixedWindow",
        "limit": 10,
        "windowMs": 1000,
        "twoTier": {"mode": "leased", "batch": 4, "windowCoupled": True},
    },
    "deny": {
        "strategy": "fixedWindow",
        "limit": 1,
        "windowMs": 1000,
        "twoTier": {"mode": "cached-deny"},
    },
    "plain": {"strategy": "fixedWindow", "limit": 10, "windowMs": 1000},
}


def _d(x: object) -> tuple[bool, int, int, int, int]:
    return (x.allowed, x.limit, x.remaining, x.reset_at, x.retry_after_ms)  # type: ignore[attr-defined]


def test_debit_meters_a_budget(start_server: Starter, store_kind: str) -> None:
    clock = tk.ManualClock(T0)
    s = start_server(POLICIES, store=make_store(store_kind, clock), clock=clock)
    for policy in ("budget", "fleet"):

        def debit(n: int, key: str = "k", policy: str = policy) -> tuple[bool, int, int, int, int]:
            return _d(s.stub.Debit(pb.DebitRequest(policy=policy, key=key, tokens=n), timeout=10).decision)

        clock.set(T0)
        # admitted iff budget remained before; the crossing debit counts in full; 0 tokens means 1
        assert debit(3) == (True, 5, 2, T0 + 1000, 0)
        assert debit(0) == (True, 5, 1, T0 + 1000, 0)
        assert debit(4) == (True, 5, 0, T0 + 1000, 0)
        clock.set(T0 + 400)
        assert debit(1) == (False, 5, 0, T0 + 1000, 600)
        assert debit(1, "other") == (True, 5, 4, T0 + 1000, 0)
        clock.set(T0 + 1000)
        assert debit(1) == (True, 5, 4, T0 + 2000, 0)


def test_ops_a_kind_does_not_serve_are_unimplemented(start_server: Starter) -> None:
    s = start_server(POLICIES)
    cases = [
        ("Check", pb.CheckRequest(policy="budget", key="k"), 'policy "budget" does not support check'),
        (
            "CheckMany",
            pb.CheckManyRequest(policy="fleet", keys=["k"]),
            'policy "fleet" does not support checkMany',
        ),
        ("CheckMany", pb.CheckManyRequest(policy="fleet"), 'policy "fleet" does not support checkMany'),
        ("Peek", pb.PeekRequest(policy="budget", key="k"), 'policy "budget" does not support peek'),
        ("Forecast", pb.ForecastRequest(policy="fleet", key="k"), 'policy "fleet" does not support forecast'),
        ("Debit", pb.DebitRequest(policy="plain", key="k"), 'policy "plain" does not support debit'),
        ("Debit", pb.DebitRequest(policy="leased", key="k"), 'policy "leased" does not support debit'),
        ("Peek", pb.PeekRequest(policy="leased", key="k"), 'policy "leased" does not support peek'),
        ("Forecast", pb.ForecastRequest(policy="deny", key="k"), 'policy "deny" does not support forecast'),
    ]
    for method, request, message in cases:
        with pytest.raises(grpc.RpcError) as info:
            getattr(s.stub, method)(request, timeout=10)
        assert (info.value.code(), info.value.details()) == (grpc.StatusCode.UNIMPLEMENTED, message)
    assert s.code_of("Debit", pb.DebitRequest(policy="budget", key="k", tokens=-1)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert s.code_of("Debit", pb.DebitRequest(policy="nope", key="k")) == grpc.StatusCode.NOT_FOUND


def test_two_tier_check_and_check_many(start_server: Starter, store_kind: str) -> None:
    clock = tk.ManualClock(T0)
    s = start_server(POLICIES, store=make_store(store_kind, clock), clock=clock)
    # leased, batch 4 on a fixed window of 10: two leases, then a lease of 4 finds 2 left: L2's denial
    got = [_d(s.check("leased", "k")) for _ in range(8)]
    assert got == [(True, 10, r, T0 + 1000, 0) for r in (3, 2, 1, 0, 3, 2, 1, 0)]
    clock.set(T0 + 100)
    assert _d(s.check("leased", "k")) == (False, 10, 2, T0 + 1000, 900)
    clock.set(T0 + 1000)
    many = s.stub.CheckMany(pb.CheckManyRequest(policy="leased", keys=["k", "k", "j"]), timeout=10).decisions
    want = [(True, 10, 2, T0 + 2000, 0), (True, 10, 3, T0 + 2000, 0), (True, 10, 3, T0 + 2000, 0)]
    assert sorted(_d(x) for x in many) == want
    # cached-deny: the denial is cached until its retry, whatever the cost asked
    assert _d(s.check("deny", "k")) == (True, 1, 0, T0 + 2000, 0)
    assert _d(s.check("deny", "k")) == (False, 1, 0, T0 + 2000, 1000)
    clock.set(T0 + 1250)
    assert _d(s.check("deny", "k", 3)) == (False, 1, 0, T0 + 2000, 750)


FLOW = """
limiters:
  leased: { strategy: gcra, limit: 1000, period: 1m, twoTier: { mode: leased, batch: 50, windowCoupled: true, lowWater: 5 } }
  completions: { tokenBudget: { budget: 100000, windowMs: 60000, maxKeys: 10 } }
  shared: { fleetBudget: { budget: 100, windowMs: 60000, prefix: llm } }
"""
BLOCK = """
limiters:
  leased:
    strategy: gcra
    limit: 1000
    period: 1m
    twoTier:
      mode: leased
      batch: 50
      windowCoupled: true
      lowWater: 5
  completions:
    tokenBudget:
      budget: 100000
      windowMs: 60000
      maxKeys: 10
  shared:
    fleetBudget:
      budget: 100
      windowMs: 60000
      prefix: llm
"""


def test_flow_and_block_yaml_build_the_same_policies() -> None:
    flow, block = load_config(FLOW).policies, load_config(BLOCK).policies
    assert flow == block
    leased = flow["leased"]
    assert isinstance(leased, TwoTierPolicy)
    assert (leased.mode, leased.batch, leased.window_coupled, leased.low_water, leased.prefix) == (
        "leased",
        50,
        True,
        5,
        "leased",
    )
    assert flow["completions"] == TokenBudgetPolicy("completions", 100000, 60000, 10)
    assert flow["shared"] == FleetBudgetPolicy("shared", 100, 60000, 100_000, "llm")


@pytest.mark.redis
def test_fleet_budget_is_one_budget_across_services() -> None:
    """Two services on one Redis (same fleet prefix) debit one counter; tokenBudget stays per process."""
    text = """
limiters:
  fleet: { fleetBudget: { budget: 10, windowMs: 600000, prefix: shared } }
  local: { tokenBudget: { budget: 10, windowMs: 600000 } }
"""
    store = async_redis_store()

    async def main() -> tuple[int, int]:
        a = RateLimiterService(load_config(text), store=store, close_store=False)
        b = RateLimiterService(load_config(text), store=store, close_store=False)
        fleet = await asyncio.gather(*(svc.debit("fleet", "k") for svc in (a, b) for _ in range(15)))
        local = await asyncio.gather(*(svc.debit("local", "k") for svc in (a, b) for _ in range(15)))
        for svc in (a, b):
            await svc.aclose()
        await store.aclose()
        return sum(d.allowed for d in fleet), sum(d.allowed for d in local)

    assert asyncio.run(main()) == (10, 20)


def test_debit_and_two_tier_follow_the_fail_mode_when_the_store_is_down() -> None:
    text = """
limiters:
  fleet: { fleetBudget: { budget: 10, windowMs: 1000 } }
  leased: { strategy: gcra, limit: 5, period: 1s, twoTier: { batch: 2 } }
"""

    async def main(fail: str) -> list[tk.Decision]:
        svc = RateLimiterService(load_config(text), store="redis://127.0.0.1:1/0", fail=fail)  # type: ignore[arg-type]
        try:
            return [await svc.debit("fleet", "k"), await svc.check("leased", "k")]
        finally:
            await svc.aclose()

    assert asyncio.run(main("open")) == [tk.Decision(True, 10, 10, 0, 0), tk.Decision(True, 5, 5, 0, 0)]
    assert asyncio.run(main("closed")) == [tk.Decision(False, 10, 0, 0, 0), tk.Decision(False, 5, 0, 0, 0)]
