"""Weighted fair escrow (``fairEscrow``) and its federated form over a Redis region pool: weights 3:1 split a
window 75/25 under equal heavy demand, an idle tenant's share goes to the tenant with demand, a random-demand
simulation stays within one unit of the weighted max-min optimum (computed here, independently, by the
water-filling of spec 8.2), and N regions on one pool admit L in total. Manual clocks: nothing sleeps."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

import throttlekit as tk
from tests._support.server import async_redis_store
from tests._support.stores import unique_prefix
from throttlekit.fairness import FairEscrow, FederatedFairEscrow, RegionFairPool

WINDOW = 60_000


def weighted_max_min(demands: list[int], weights: list[float], limit: int) -> list[int]:
    """Spec 8.2, written here from the definition: continuous water-filling over the tenants sorted by
    demand per weight, each allocation floored, then the leftover units one at a time to the tenant not
    fully served with the smallest allocation per weight (first index on ties)."""
    n = len(demands)
    alloc = [0.0] * n
    rem = float(min(sum(demands), limit))
    active = [i for i in range(n) if demands[i] > 0]
    for i in sorted(active, key=lambda i: demands[i] / weights[i]):
        level = rem / sum(weights[j] for j in active)
        if weights[i] * level >= demands[i]:
            alloc[i] = demands[i]
            rem -= demands[i]
            active.remove(i)
        else:
            for j in active:
                alloc[j] = weights[j] * level
            break
    out = [math.floor(a) for a in alloc]
    left = min(sum(demands), limit) - sum(out)
    while left > 0:
        hungry = [i for i in range(n) if out[i] < demands[i]]
        i = min(hungry, key=lambda i: (out[i] / weights[i], i))
        out[i] += 1
        left -= 1
    return out


def test_reference_max_min_is_right() -> None:
    assert weighted_max_min([100, 100], [3, 1], 100) == [75, 25]
    assert weighted_max_min([10, 100, 100], [1, 1, 1], 90) == [10, 40, 40]
    assert weighted_max_min([0, 100], [1, 1], 10) == [0, 10]
    assert weighted_max_min([100, 100, 100], [3, 2, 2], 100) == [43, 29, 28]


def test_weights_3_to_1_split_a_window_75_25() -> None:
    clock = tk.ManualClock(1_000_000)
    wfe = FairEscrow(100, WINDOW, weights={"a": 3, "b": 1}, clock=clock)
    got = {"a": 0, "b": 0}
    for _ in range(200):
        for t in ("a", "b"):
            clock.advance(1)
            got[t] += wfe.check(t).allowed
    assert got == {"a": 75, "b": 25}
    d = wfe.check("a")
    assert not d.allowed and d.limit == 75 and d.remaining == 0 and d.reset_at == 1_020_000
    assert d.retry_after_ms == 1_020_000 - clock.now_ms()
    clock.set(1_020_000)  # the next window starts over
    assert wfe.check("b").allowed
    wfe.close()


def test_an_idle_tenant_share_is_borrowed() -> None:
    clock = tk.ManualClock(1_000_000)
    wfe = FairEscrow(100, WINDOW, weights={"a": 3, "b": 1}, clock=clock)
    assert sum(wfe.check("b").allowed for _ in range(150)) == 100  # a never asked: b takes it all
    d = wfe.check("a")  # a comes late: nothing is left
    assert not d.allowed and d.limit == 0
    wfe.close()
    # with idleMs, a tenant that stopped asking leaves the split: the other borrows its unused share
    wfe = FairEscrow(100, WINDOW, weights={"a": 3, "b": 1}, idle_ms=1000, clock=clock)
    assert wfe.check("a").allowed and wfe.check("b").allowed
    assert sum(wfe.check("b").allowed for _ in range(100)) == 24  # b's share is 25 while a is active
    clock.advance(1001)
    assert sum(wfe.check("b").allowed for _ in range(100)) == 74  # a keeps its 1, b reaches 99
    wfe.close()


def test_random_demand_stays_within_one_unit_of_the_weighted_max_min_optimum() -> None:
    """Random budgets, weights and demands (0 = idle); every tenant with demand left asks one unit per
    round, in a random order (1 ms per request); a tenant whose demand is met stops, and after idleMs
    leaves the split. What it could not get, it keeps asking for until nothing has moved for idleMs."""
    rng = random.Random(20261130)
    for trial in range(100):
        n = rng.randint(2, 6)
        limit = rng.randint(10, 200)
        weights = [float(rng.randint(1, 5)) for _ in range(n)]
        demands = [rng.choice([0, rng.randint(1, limit // 2), rng.randint(1, 2 * limit)]) for _ in range(n)]
        clock = tk.ManualClock(10_000_000)
        idle = 4 * n
        wfe = FairEscrow(
            limit, 10**9, weights={str(i): w for i, w in enumerate(weights)}, idle_ms=idle, clock=clock
        )
        got = [0] * n
        quiet = 0
        while quiet <= idle + 1 and any(got[i] < demands[i] for i in range(n)):  # a round lasts >= 1 ms
            moved = False
            order = [i for i in range(n) if got[i] < demands[i]]
            rng.shuffle(order)
            for i in order:
                clock.advance(1)
                if wfe.check(str(i)).allowed:
                    got[i] += 1
                    moved = True
            quiet = 0 if moved else quiet + 1
            if not order:
                break
        best = weighted_max_min(demands, weights, limit)
        assert sum(got) <= limit
        assert all(abs(g - b) <= 1 for g, b in zip(got, best)), (trial, limit, weights, demands, got, best)
        wfe.close()


@pytest.mark.redis
def test_regions_on_one_pool_admit_the_limit_in_total_split_by_weight() -> None:
    async def run() -> None:
        clock = tk.ManualClock(4_980_000)  # a window [4_980_000, 5_040_000)
        store = async_redis_store(unique_prefix("tkrfp"))
        pool = RegionFairPool(store, limit=120, window_ms=WINDOW, key="gw", clock=clock)
        regions = {
            "eu": FederatedFairEscrow(pool, region="eu", weights={"a": 3}, clock=clock),
            "us": FederatedFairEscrow(pool, region="us", weights={"b": 1}, clock=clock),
            "ap": FederatedFairEscrow(pool, region="ap", weights={"c": 2}, clock=clock),
        }
        tenants = {"eu": "a", "us": "b", "ap": "c"}
        got = {"a": 0, "b": 0, "c": 0}
        try:
            for _ in range(200):
                for region, wfe in regions.items():
                    clock.advance(1)
                    got[tenants[region]] += (await wfe.check(tenants[region])).allowed
            # 120 split 3:1:2, never 3 x 120
            assert got == {"a": 60, "b": 20, "c": 40}
            d = await regions["us"].check("b")
            assert not d.allowed and d.reset_at == 5_040_000
            clock.set(5_040_000)  # a new window: the pool and every region start over
            assert (await regions["us"].check("b")).allowed
            assert all(r.pool_calls > 0 for r in regions.values())
        finally:
            for wfe in regions.values():
                wfe.close()
            await store.adelete(pool.key)
            await store.aclose()

    asyncio.run(run())


@pytest.mark.redis
def test_pipelined_abind_with_several_per_call_argv_matches_aeval() -> None:
    """The pipelined Redis store's ``abind`` of ``wfe_check`` (constants bound, the request's values per
    call) gives the same replies as ``aeval``."""
    import asyncio

    from tests._support.server import async_redis_store
    from throttlekit.fairness import wfe_args

    async def run() -> None:
        store = async_redis_store()
        try:
            bound = store.abind("wfe_check", (60_000, 10, 100, 0))
            a, b = store.prefix + ":wfe-a", store.prefix + ":wfe-b"
            allowed = []
            for tenant in ("x", "y", "x"):
                got = list(await bound(a, 1_000, tenant, 2, 3, -1))
                allowed.append(got[3])
                want = list(
                    await store.aeval(
                        "wfe_check", (b,), 1_000, wfe_args(60_000, 10, 100, 0, tenant, 2, 3, -1)
                    )
                )
                assert got == want
            assert allowed == [1, 1, 0]  # 3 + 3, then x's 6 would pass its max-min share of 5
            await store.adelete(a)
            await store.adelete(b)
        finally:
            await store.aclose()

    asyncio.run(run())
