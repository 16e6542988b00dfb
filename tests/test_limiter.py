"""The Python API over every store: check, check_many, peek, forecast, reset, prefixes, async twins."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

import throttlekit as tk
from tests._support.env import REDIS_URL, redis_client


def test_check_peek_forecast_reset(store_factory: Any, clock: tk.ManualClock) -> None:
    store = store_factory(clock)
    limiter = tk.Limiter(tk.FixedWindow(3, "1s"), store=store, prefix="api", clock=clock)
    assert limiter.peek("u") == tk.Decision(True, 3, 3, 1_001_000, 0)
    assert limiter.check("u", 2) == tk.Decision(True, 3, 1, 1_001_000, 0)
    assert limiter.forecast("u") == tk.Forecast(1, 1_001_000, 1_001_000)
    assert limiter.check("u", 2) == tk.Decision(False, 3, 1, 1_001_000, 1000)
    limiter.reset("u")
    assert limiter.check("u", 3).allowed
    store.close()
    store.close()  # idempotent


def test_check_many_decides_in_input_order_at_one_instant(store_factory: Any, clock: tk.ManualClock) -> None:
    store = store_factory(clock)
    limiter = tk.Limiter(tk.Gcra(10, "1s", burst=2), store=store, clock=clock)
    out = limiter.check_many(["a", "b", "a", "a", "c"])
    assert [d.allowed for d in out] == [True, True, True, False, True]
    assert [d.remaining for d in out] == [1, 1, 0, 0, 1]
    assert len({d.reset_at for d in (out[0], out[1], out[4])}) == 1  # one instant
    assert limiter.check_many([]) == []
    store.close()


def test_prefixes_compose_store_then_limiter(clock: tk.ManualClock) -> None:
    store = tk.MemoryStore(clock=clock, prefix="svc")
    tk.Limiter(tk.Gcra(5, 1000), store=store, prefix="api").check("user:1")
    tk.Limiter(tk.Gcra(5, 1000), store=store).check("user:2")
    assert store.dump("svc:api:user:1") is not None
    assert store.dump("svc:user:2") is not None
    assert store.key_count() == 2


def test_two_limiters_on_one_store_share_one_limit(store_factory: Any, clock: tk.ManualClock) -> None:
    store = store_factory(clock)
    a = tk.Limiter(tk.FixedWindow(3, 1000), store=store, clock=clock)
    b = tk.Limiter(tk.FixedWindow(3, 1000), store=store, clock=clock)
    assert [a.check("k").allowed, b.check("k").allowed, a.check("k").allowed, b.check("k").allowed] == [
        True,
        True,
        True,
        False,
    ]
    store.close()


def test_store_urls() -> None:
    assert isinstance(tk.from_url("memory://?max_keys=10&runtime=lua51"), tk.MemoryStore)
    with pytest.raises(
        tk.ConfigError, match="unknown store URL 'mongo://x': expected one of memory://, redis://"
    ):
        tk.from_url("mongo://x")
    with pytest.raises(tk.ConfigError, match=r"unknown option 'size'; allowed: max_keys, prefix, runtime"):
        tk.from_url("memory://?size=1")
    with pytest.raises(tk.ConfigError, match="max_keys must be an integer"):
        tk.from_url("memory://?max_keys=lots")
    limiter = tk.Limiter(tk.Gcra(1, 1000), store="memory://")
    assert limiter.check("a").allowed and not limiter.check("a").allowed
    limiter.close()


def test_token_budget_and_leaky_bucket_api(clock: tk.ManualClock) -> None:
    meter = tk.TokenBudget(100, "1m", clock=clock)
    assert meter.debit("u", 80) == tk.Decision(True, 100, 20, 1_020_000, 0)
    assert meter.debit("u", 50).remaining == 0  # the crossing debit counts in full
    assert meter.debit("u") == tk.Decision(False, 100, 0, 1_020_000, 20_000)
    assert meter.remaining("u") == 0
    with pytest.raises(tk.ConfigError, match=r"tokenBudget\.tokens must be an integer, got 1\.5"):
        meter.debit("u", 1.5)
    with pytest.raises(tk.ConfigError, match=r"tokenBudget\.budget is out of range, got 0\.5"):
        tk.TokenBudget(0.5, 1000)
    shaper = tk.LeakyBucket(10, 150, clock=clock)
    assert [tuple(shaper.reserve("q")) for _ in range(3)] == [(True, 0), (True, 100), (False, 50)]


def test_lease_spender_refresh_loop() -> None:
    spender = tk.LeaseSpender(limit=10, ttl_ms=1000)
    grants = iter([(2, 5_000), (3, 5_000)])
    d = spender.spend_or_refresh(1_000, 4, lambda cost: next(grants))
    assert d == tk.Decision(True, 10, 1, 5_000, 0)
    denial = tk.Decision(False, 10, 0, 5_000, 4_000)
    assert spender.spend_or_refresh(1_000, 4, lambda cost: denial) is denial
    with pytest.raises(tk.ThrottleKitError, match="zero-capacity grant without a denial"):
        spender.spend_or_refresh(1_000, 4, lambda cost: (0, 5_000))
    spender.close()


def test_async_limiter(clock: tk.ManualClock) -> None:
    async def scenario(store: Any) -> None:
        limiter = tk.AsyncLimiter(tk.TokenBucket(3, 1), store=store, clock=clock)
        assert (await limiter.check("k", 2)) == tk.Decision(True, 3, 1, 1_002_000, 0)
        assert (await limiter.peek("k")).remaining == 1
        assert (await limiter.forecast("k")) == tk.Forecast(1, 1_001_000, 1_002_000)
        many = await limiter.check_many(["k", "j"], 1)
        assert [d.remaining for d in many] == [0, 2]
        await limiter.reset("k")
        assert (await limiter.check("k", 3)).allowed
        await limiter.reset("k")
        await limiter.reset("j")
        await store.aclose()

    asyncio.run(scenario(tk.MemoryStore(clock=clock)))


@pytest.mark.redis
def test_async_limiter_on_redis(clock: tk.ManualClock) -> None:
    redis_client()  # under CI=true a missing server fails here

    async def scenario() -> None:
        store = tk.AsyncRedisStore(url=REDIS_URL, prefix=f"tkt-{uuid.uuid4().hex[:10]}")
        try:
            await store.client.ping()
        except Exception:
            await store.aclose()
            pytest.skip("no Redis server for the asyncio store (fakeredis covers the sync store)")
        limiter = tk.AsyncLimiter(tk.TokenBucket(3, 1), store=store, clock=clock)
        assert (await limiter.check("k", 2)) == tk.Decision(True, 3, 1, 1_002_000, 0)
        assert [d.remaining for d in await limiter.check_many(["k", "j"], 1)] == [0, 2]
        await store.client.script_flush()
        assert (await limiter.peek("k")).remaining == 0  # NOSCRIPT: loaded and retried
        await limiter.reset("k")
        await limiter.reset("j")
        await store.aclose()

    asyncio.run(scenario())


@pytest.mark.redis
def test_async_limiter_on_a_redis_url_pipelines(clock: tk.ManualClock) -> None:
    client = redis_client()
    if "Fake" in type(client).__name__:
        pytest.skip("needs a real Redis server (the pipelining store speaks RESP over its own socket)")

    async def scenario() -> None:
        limiter = tk.AsyncLimiter(
            tk.FixedWindow(5, 1000), store=REDIS_URL, prefix=f"tkt-{uuid.uuid4().hex[:8]}", clock=clock
        )
        assert isinstance(limiter.store, tk.stores.PipelinedRedisStore)
        out = await asyncio.gather(*(limiter.check("k") for _ in range(8)))
        assert sorted(d.remaining for d in out if d.allowed) == [0, 1, 2, 3, 4]
        assert sum(not d.allowed for d in out) == 3
        await limiter.reset("k")
        await limiter.aclose()

    asyncio.run(scenario())


_STRATEGIES = [
    tk.Gcra(3, "1s", burst=2),
    tk.TokenBucket(capacity=3, refill_per_sec=1),
    tk.FixedWindow(3, "1s"),
    tk.SlidingWindow(3, "1s"),
    tk.SlidingWindowLog(3, "1s"),
    tk.Quota(3, "calendar-day"),
]


@pytest.mark.parametrize("strategy", _STRATEGIES, ids=lambda s: s.kind)
@pytest.mark.parametrize("variant", ["plain", "prefix", "clock"])
def test_check_builds_the_decision_that_decision_of_builds(strategy: Any, variant: str) -> None:
    """``Limiter.check`` answers, on each of its three variants (no prefix and the store's clock, a prefix,
    the limiter's own clock), over a run of allows and denials, exactly ``decision_of`` of the same
    transform's reply on a twin store, field for field, with ``allowed`` a bool."""
    from throttlekit._clock import SERVER_TIME
    from throttlekit._types import decision_of

    clock = tk.ManualClock(1_700_000_000_000)
    ours, twin = tk.MemoryStore(clock=clock), tk.MemoryStore(clock=clock)
    prefix = "p" if variant == "prefix" else ""
    lim = tk.Limiter(strategy, store=ours, prefix=prefix, clock=clock if variant == "clock" else None)
    args = strategy.arguments(strategy.check_transform)
    full = f"{prefix}:k" if prefix else "k"
    for i in range(12):
        now = clock.now_ms() if variant == "clock" else SERVER_TIME
        d = lim.check("k", 1 + i % 2)
        want = decision_of(twin.eval(strategy.check_transform, [full], now, [*args, 1 + i % 2]))
        assert type(d) is tk.Decision and d == want and type(d.allowed) is bool
        clock.advance(150)
