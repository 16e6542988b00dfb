"""The regional escrow (L2, spec 7.1/7.2) between a region's instances and the cross-region coordinator:
instances of a region share what the region leased, the per-window bound holds with it, and with
``regional-only`` a region keeps admitting from its escrow while the coordinator is down (a redis-server of
the test's own, stopped and restarted), up to what the escrow holds and never more. Manual clocks: the
coordinator's and the escrow's windows follow them, nothing sleeps."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

import throttlekit as tk
from tests._support.server import async_redis_store
from tests._support.stores import unique_prefix
from throttlekit.federation import Coordinator, FederatedLimiter, RegionalEscrow

Maker = Callable[[tk.ManualClock], Any]

# a long window: the stores' TTLs run on real time while the test's windows follow a manual clock
L, WINDOW, BATCH, ESCROW_BATCH = 60, 60_000, 4, 12


@pytest.fixture(params=["redis", "postgres"])
def regional_store(request: pytest.FixtureRequest) -> Maker:
    """The region's store (a second store beside the coordinator's)."""
    prefix = unique_prefix("tkl2")
    if request.param == "redis":
        return lambda clock: async_redis_store(prefix)
    url, table = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_table")
    from throttlekit.stores.postgres import PostgresStore

    return lambda clock: PostgresStore(url, table=table, clock=clock, prefix=prefix, sweep_interval_ms=0)


def _instance(
    coord_store: Any,
    regional: Any,
    clock: tk.ManualClock,
    region: str,
    *,
    batch: int = BATCH,
    escrow_batch: int = ESCROW_BATCH,
    on_outage: str = "fail-closed",
    health_check_ms: float = 5000,
    coord_prefix: str = "fed",
) -> FederatedLimiter:
    coord = Coordinator(coord_store, window_ms=WINDOW, budget=L, prefix=coord_prefix, clock=clock)
    escrow = RegionalEscrow(regional, region=region, window_ms=WINDOW, clock=clock)
    return FederatedLimiter(
        tk.FixedWindow(L, WINDOW),
        coord,
        batch=batch,
        region=region,
        clock=clock,
        escrow=escrow,
        escrow_batch=escrow_batch,
        on_outage=on_outage,
        health_check_ms=health_check_ms,
    )


def test_instances_of_a_region_share_its_escrow(regional_store: Maker) -> None:
    async def run() -> None:
        clock = tk.ManualClock(3_000_000)
        coord_store, regional = async_redis_store(unique_prefix("tkfed")), regional_store(clock)
        a = _instance(coord_store, regional, clock, "eu")
        b = _instance(coord_store, regional, clock, "eu")
        try:
            d = await a.check("k", 1)  # escrow empty: the coordinator grants 12 into it, a takes 4
            assert d.allowed and d.remaining == 3 and d.reset_at == 3_060_000
            assert (a.round_trips, a.credits("k")) == (1, 3)
            esc = a.escrow
            assert esc is not None
            assert (await esc.alease("k", 0)).balance == 8
            d = await b.check("k", 1)  # b takes its batch from the escrow: no coordinator round trip
            assert d.allowed and (b.round_trips, b.credits("k")) == (0, 3)
            assert (await esc.alease("k", 0)).balance == 4
            d = await b.check("k", 10)  # b holds 3: the escrow's 4 are not enough, on to the coordinator
            assert d.allowed and b.round_trips == 1
            # a window of 60 with 12 leased per coordinator trip: 5 grants, and one refusal (a asked while
            # b still held the window's last credits)
            got = 1 + 1 + 10
            for i in range(2 * L):
                if got == L:
                    break
                got += (await (a if i % 2 else b).check("k", 1)).allowed
            assert got == L and a.round_trips + b.round_trips == 6
            d = await a.check("k", 1)  # the window is spent: the coordinator's denial
            assert not d.allowed and d.limit == L and d.reset_at == 3_060_000
            clock.set(3_060_000)  # the next window: old credits and escrow units are gone
            d = await a.check("k", 1)
            assert d.allowed and d.reset_at == 3_120_000 and d.remaining == 3
        finally:
            for lim in (a, b):
                await lim.aclose()
            await coord_store.aclose()
            await regional.aclose()

    asyncio.run(run())


def test_two_regions_with_escrows_stay_within_the_budget(regional_store: Maker) -> None:
    async def run() -> tuple[list[int], list[int]]:
        clock = tk.ManualClock(1_200_000)
        coord_store = async_redis_store(unique_prefix("tkfed"))
        stores = [regional_store(clock), regional_store(clock)]
        # two regions, two instances each, each region on its own regional store
        lims = [_instance(coord_store, stores[i // 2], clock, f"r{i // 2}") for i in range(4)]
        rng = random.Random(11)
        admitted, unused = [], []
        try:
            for w in range(10):
                demand = 3 * L if w % 3 else L // 3
                got = 0
                for step in range(demand):
                    clock.set(1_200_000 + w * WINDOW + step * (WINDOW - 1) // demand)
                    lim = lims[rng.choice((0, 0, 1, 2, 3))]
                    cost = rng.choice((1, 1, 2, 5))
                    d = await lim.check("k", cost)
                    got += cost if d.allowed else 0
                admitted.append(got)
                if w % 3:
                    unused.append(L - got)
        finally:
            for lim in lims:
                await lim.aclose()
            await coord_store.aclose()
            for s in stores:
                await s.aclose()
        return admitted, unused

    admitted, unused = asyncio.run(run())
    assert max(admitted) <= L, admitted
    # each region may strand the rest of its escrow's last grant, each instance the rest of its batch
    # (a request larger than what is held leaves it unused too: + the largest cost per instance)
    assert max(unused) <= 2 * ESCROW_BATCH + 4 * (BATCH + 5), unused


def test_regional_only_serves_from_the_escrow_while_the_coordinator_is_down(regional_store: Maker) -> None:
    """The coordinator's own redis-server freezes mid-window (SIGSTOP: its data survives): the region
    admits exactly what its escrow and its instances hold, then denies (StoreError: the server's
    fail-closed answer) without asking the coordinator again before the probe interval; once the
    coordinator answers again, the next probe resumes leasing, and the window's total stays <= L."""

    async def run() -> None:
        from tests._support.redis_server import OwnRedis
        from throttlekit.server import redis_store

        clock = tk.ManualClock(9_000_000)
        server = OwnRedis()
        server.start()
        regional = regional_store(clock)
        coord_store = redis_store(server.url, unique_prefix("tkfed"))
        a, b = (
            _instance(
                coord_store,
                regional,
                clock,
                "eu",
                escrow_batch=20,
                on_outage="regional-only",
                health_check_ms=300,
            )
            for _ in range(2)
        )
        admitted = 0

        async def drive(n: int, start: int) -> int:
            got = 0
            for i in range(n):
                clock.set(start + i)
                try:
                    got += (await (a if i % 2 else b).check("k", 1)).allowed
                except tk.StoreError:
                    pass
            return got

        try:
            assert (await a.check("k", 1)).allowed  # coordinator: 20 into the escrow, a takes 4 (holds 3)
            admitted += 1
            server.freeze()
            # what the region holds: a's 3 + the escrow's 16; b holds nothing yet
            got = await drive(40, 9_000_100)
            assert got == 3 + 16
            admitted += got
            down = [lim for lim in (a, b) if not lim.coordinator_healthy]
            assert down  # each instance that asked is marked; within the interval nobody asks again
            trips = [lim.round_trips for lim in (a, b)]
            for lim in down:
                with pytest.raises(tk.StoreError, match="regional-only"):
                    await lim.check("k", 1)
            assert [lim.round_trips for lim in (a, b)] == trips
            server.thaw()
            # each instance's timed-out lease (20 units) still ran once the coordinator thawed: those
            # units went to nobody (lost for this window: the safe direction)
            left = max(0, L - 20 - 20 * len(down))
            clock.set(9_000_500)  # past the probe interval: the next short check probes the coordinator
            d = await a.check("k", 1)
            assert a.coordinator_healthy and a.round_trips == trips[0] + 1
            admitted += d.allowed
            admitted += await drive(3 * L, 9_000_600)
            assert admitted == 20 + left <= L  # the coordinator kept its state: never more than L
            clock.set(9_060_000)  # the next window: leasing resumed for every instance
            assert (await a.check("k", 1)).allowed and (await b.check("k", 1)).allowed
            assert a.coordinator_healthy and b.coordinator_healthy
        finally:
            server.thaw()
            for lim in (a, b):
                await lim.aclose()
            await coord_store.aclose()
            await regional.aclose()
            server.stop()

    asyncio.run(run())


def test_fail_closed_with_an_escrow_still_spends_the_escrow_and_asks_the_coordinator_each_time() -> None:
    async def run() -> None:
        from tests._support.redis_server import OwnRedis
        from throttlekit.server import redis_store

        clock = tk.ManualClock(10_980_000)
        server = OwnRedis()
        server.start()
        regional = async_redis_store(unique_prefix("tkl2"))
        coord_store = redis_store(server.url, unique_prefix("tkfed"))
        a = _instance(coord_store, regional, clock, "eu", escrow_batch=8)
        try:
            assert (await a.check("k", 1)).allowed  # 8 into the escrow, a takes 4 (holds 3, escrow 4)
            server.stop()  # (gone: connection refused, an immediate failure)
            got = 0
            for _ in range(10):
                try:
                    got += (await a.check("k", 1)).allowed
                except tk.StoreError:
                    pass
            assert got == 7 and a.coordinator_healthy  # fail-closed never marks it: every check asks
        finally:
            await a.aclose()
            await coord_store.aclose()
            await regional.aclose()
            server.stop()

    asyncio.run(run())


def test_an_escrow_outage_sends_the_coordinator_grant_to_the_instance_whole() -> None:
    async def run() -> None:
        from tests._support.redis_server import OwnRedis
        from throttlekit.server import redis_store

        clock = tk.ManualClock(12_960_000)
        server = OwnRedis()
        server.start()
        regional = redis_store(server.url, unique_prefix("tkl2"))
        coord_store = async_redis_store(unique_prefix("tkfed"))
        a = _instance(coord_store, regional, clock, "eu", escrow_batch=10)
        try:
            server.stop()
            assert (await a.check("k", 1)).allowed
            assert a.credits("k") == 9 and a.round_trips == 1  # the escrow failed: a holds the whole 10
        finally:
            await a.aclose()
            await coord_store.aclose()
            await regional.aclose()
            server.stop()

    asyncio.run(run())


def test_escrow_validation_names_the_field() -> None:
    store = tk.MemoryStore()
    with pytest.raises(tk.ConfigError, match="region"):
        RegionalEscrow(store, region="", window_ms=1000)
    coord = Coordinator(store, window_ms=1000, budget=10)
    with pytest.raises(tk.ConfigError, match="coordinatorHealthCheckMs"):
        FederatedLimiter(tk.FixedWindow(10, 1000), coord, health_check_ms=0)
    with pytest.raises(tk.ConfigError, match="onCoordinatorOutage"):
        FederatedLimiter(tk.FixedWindow(10, 1000), coord, on_outage="regional")
    with pytest.raises(tk.ConfigError, match="escrowBatch"):
        FederatedLimiter(tk.FixedWindow(10, 1000), coord, escrow_batch=0)
    lim = FederatedLimiter(tk.FixedWindow(10, 1000), coord, batch=4, escrow_batch=100)
    assert lim.escrow_batch == 10 and not lim.regional_only  # capped at the budget; no escrow


FED_POLICY = (
    '{"limiters": {"fed": {"strategy": "fixedWindow", "limit": 60, "windowMs": 60000, '
    '"federated": {"batch": 4, "escrowBatch": 12, "onCoordinatorOutage": "regional-only"}}}}'
)


@pytest.mark.parametrize("url", ["memory://", "dynamodb://tk-table"])
def test_the_regional_store_refuses_memory_and_dynamodb(url: str) -> None:
    from throttlekit.config import load_config
    from throttlekit.server import RateLimiterService

    with pytest.raises(tk.ConfigError, match=r"--regional-store.*cannot live in (memory|dynamodb)"):
        RateLimiterService(
            load_config(FED_POLICY), store=async_redis_store(), close_store=True, regional_store=url
        )


def test_regional_only_without_a_regional_store_warns_at_load(caplog: pytest.LogCaptureFixture) -> None:
    from throttlekit.config import load_config
    from throttlekit.server import RateLimiterService

    async def run() -> None:
        svc = RateLimiterService(load_config(FED_POLICY), store=async_redis_store(), close_store=True)
        try:
            assert svc.policy("fed").limiter.escrow is None
        finally:
            await svc.aclose()

    caplog.set_level("WARNING", logger="throttlekit.server")
    asyncio.run(run())
    assert "regional-only without a regional store" in caplog.text and "fail-closed" in caplog.text


def test_the_service_serves_a_federated_policy_through_its_regional_store() -> None:
    """``regional_store=`` (what ``--regional-store`` passes) is opened by the store factory, carries the
    escrow at ``<escrowPrefix>:<region>:<policy prefix>:<key>`` and is closed with the service."""
    from tests._support.env import REDIS_URL
    from throttlekit.config import load_config
    from throttlekit.server import RateLimiterService

    async def run() -> None:
        prefix = unique_prefix("tkl2")
        svc = RateLimiterService(
            load_config(FED_POLICY),
            store=async_redis_store(),
            close_store=True,
            region="eu",
            regional_store=f"{REDIS_URL}?prefix={prefix}",
        )
        try:
            rt = svc.policy("fed")
            assert (await svc.check("fed", "acme")).allowed
            assert rt.limiter.round_trips == 1 and rt.limiter.credits("acme") == 3
            esc = rt.limiter.escrow
            assert esc.full_key("acme") == f"{prefix}:tk:l2:eu:fed:acme"
            assert (await esc.alease("acme", 0)).balance == 8
            await svc.regional_store.aping()
        finally:
            await svc.aclose()

    asyncio.run(run())
