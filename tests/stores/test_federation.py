"""Federation on the shared stores (Redis, Postgres): several regions' :class:`FederatedLimiter`s on one
coordinator never admit more than the budget in a window, leave at most regions x batch of it unused under
saturating demand, answer a refusal with the coordinator's denial, and give unspent units back on close.
Time is a manual clock (the coordinator's windows follow it), so windows are exact and nothing sleeps."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

import throttlekit as tk
from tests._support.server import async_redis_store
from tests._support.stores import unique_prefix
from throttlekit.federation import Coordinator, FederatedLimiter

Maker = Callable[[tk.ManualClock], Any]

L, WINDOW, BATCH = 60, 1000, 4


@pytest.fixture(params=["redis", "postgres"])
def coordinator_store(request: pytest.FixtureRequest) -> Maker:
    if request.param == "redis":
        prefix = unique_prefix("tkfed")
        return lambda clock: async_redis_store(prefix)
    url, table = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_table")
    from throttlekit.stores.postgres import PostgresStore

    prefix = unique_prefix("tkfed")
    return lambda clock: PostgresStore(url, table=table, clock=clock, prefix=prefix, sweep_interval_ms=0)


def _regions(make: Maker, clock: tk.ManualClock, n: int, batch: int = BATCH) -> list[FederatedLimiter]:
    out = []
    for i in range(n):
        coord = Coordinator(make(clock), window_ms=WINDOW, budget=L, prefix="fed", clock=clock)
        out.append(
            FederatedLimiter(tk.FixedWindow(L, WINDOW), coord, batch=batch, region=f"r{i}", clock=clock)
        )
    return out


async def _close(limiters: list[FederatedLimiter]) -> None:
    for lim in limiters:
        await lim.aclose()
        await lim.coordinator.store.aclose()


def test_regions_never_exceed_the_budget_and_strand_at_most_a_batch_each(coordinator_store: Maker) -> None:
    async def run() -> tuple[list[int], list[int]]:
        clock = tk.ManualClock(1_000_000)
        regions = _regions(coordinator_store, clock, 3)
        rng = random.Random(7)
        admitted, saturated_unused = [], []
        try:
            for w in range(12):
                clock.set(1_000_000 + w * WINDOW)
                skew = [0.7, 0.2, 0.1] if w % 2 else [0.1, 0.1, 0.8]
                demand = 3 * L if w % 3 else L // 2  # saturating windows, and quiet ones
                got = 0
                for step in range(demand):
                    clock.set(1_000_000 + w * WINDOW + step * (WINDOW - 1) // demand)
                    r = rng.choices(range(3), skew)[0]
                    cost = rng.choice((1, 1, 1, 2))
                    d = await regions[r].check("k", cost)
                    got += cost if d.allowed else 0
                    if not d.allowed:
                        assert d.reset_at == 1_000_000 + (w + 1) * WINDOW and d.retry_after_ms >= 1
                        assert d.limit == L
                admitted.append(got)
                if w % 3:
                    saturated_unused.append(L - got)
        finally:
            await _close(regions)
        return admitted, saturated_unused

    admitted, unused = asyncio.run(run())
    assert max(admitted) <= L, admitted
    # every region may strand what is left of its last lease (< batch + the largest cost)
    assert max(unused) <= 3 * BATCH, unused


def test_denial_is_the_coordinators_and_partial_grants_are_kept(coordinator_store: Maker) -> None:
    async def run() -> None:
        clock = tk.ManualClock(5_000_250)
        (lim,) = _regions(coordinator_store, clock, 1, batch=50)
        try:
            d = await lim.check("k", 55)  # a lease of max(50, 55): 55 of the window's 60
            assert d.allowed and d.remaining == 0 and d.reset_at == 5_001_000
            d = await lim.check("k", 9)  # holds 0: lease max(50, 9) -> partial 5: denied, keeps the 5
            assert not d.allowed and d.remaining == 5 and d.retry_after_ms == 750 and d.reset_at == 5_001_000
            assert lim.credits("k") == 5
            for _ in range(5):
                assert (await lim.check("k", 1)).allowed
            assert not (await lim.check("k", 1)).allowed
            assert lim.round_trips == 3
            clock.set(5_001_000)  # the next window: a fresh budget, the old credits are gone
            d = await lim.check("k", 1)
            assert d.allowed and d.remaining == 49 and d.reset_at == 5_002_000
        finally:
            await _close([lim])

    asyncio.run(run())


def test_close_gives_the_running_windows_units_back(coordinator_store: Maker) -> None:
    async def run() -> None:
        clock = tk.ManualClock(7_000_000)
        a, b = _regions(coordinator_store, clock, 2, batch=20)
        try:
            assert (await a.check("k", 1)).allowed  # a holds 19
            await a.aclose()  # gives 19 back
            got = 0
            for _ in range(L + 5):
                got += (await b.check("k", 1)).allowed
            assert got == L - 1  # everything but the unit a spent
        finally:
            await _close([a, b])

    asyncio.run(run())


def test_coordinator_outage_denies_once_local_credits_are_spent() -> None:
    """A coordinator that cannot be reached: local credits still serve, then StoreError (the server
    answers it fail-closed)."""

    async def run() -> None:
        from tests._support.redis_server import OwnRedis
        from throttlekit.server import redis_store

        clock = tk.ManualClock(9_000_000)
        server = OwnRedis()
        server.start()
        try:
            store = redis_store(server.url, unique_prefix("tkfed"))
            coord = Coordinator(store, window_ms=WINDOW, budget=L, clock=clock)
            lim = FederatedLimiter(tk.FixedWindow(L, WINDOW), coord, batch=3, clock=clock)
            assert (await lim.check("k", 1)).allowed
            server.stop()
            assert (await lim.check("k", 1)).allowed and (await lim.check("k", 1)).allowed
            with pytest.raises(tk.StoreError):
                await lim.check("k", 1)
            await lim.aclose()  # the give-back fails (logged), close still completes
            await store.aclose()
        finally:
            server.stop()

    asyncio.run(run())


@pytest.mark.postgres
def test_fleet_reserve_on_postgres(pg_url: str, pg_table: str) -> None:
    """The Fleet door over a Postgres coordinator: grants, a partial grant, a refusal, all in one window."""
    import grpc

    from throttlekit._proto import throttlekit_pb2 as pb
    from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc
    from throttlekit.config import load_config
    from throttlekit.server import RateLimiterService, serve
    from throttlekit.stores.postgres import PostgresStore

    cfg = load_config(
        '{"limiters": {"fed": {"strategy": "fixedWindow", "limit": 10, "windowMs": 600000, "federated": {}}}}'
    )
    store = PostgresStore(pg_url, table=pg_table, prefix=unique_prefix("tkfed"), sweep_interval_ms=0)
    handle = serve(RateLimiterService(cfg, store=store, close_store=True), "127.0.0.1", 0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as ch:
            stub = pb_grpc.FleetStub(ch)

            def reserve(wants: int) -> Any:
                return stub.Reserve(pb.ReserveRequest(policy="fed", wants=wants), timeout=30).lease

            first, partial, refused = reserve(6), reserve(6), reserve(6)
        assert (first.capacity, partial.capacity, refused.capacity) == (6, 4, 0)
        assert first.expiry_ms == partial.expiry_ms == refused.expiry_ms and first.expiry_ms % 600_000 == 0
        assert refused.retry_after_ms > 0 and first.limit == 10
    finally:
        handle.close(grace=1)
