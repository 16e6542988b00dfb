"""The server's Redis transport: one pipelined connection, hiredis-parsed replies."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

import throttlekit as tk
from tests._support.env import IN_CI, REAL_REDIS, REDIS_URL
from throttlekit.server import PipelinedRedisStore

pytestmark = pytest.mark.redis


@pytest.fixture(autouse=True)
def _needs_real_redis() -> None:
    if REAL_REDIS is None:
        if IN_CI:
            pytest.fail(f"CI=true but Redis is unreachable at {REDIS_URL}")
        pytest.skip("needs a real Redis")


def test_batches_decide_like_the_engine_and_survive_script_flush() -> None:
    clock = tk.ManualClock(1_700_000_000_000)
    store = PipelinedRedisStore(REDIS_URL, prefix=f"tr-{uuid.uuid4().hex[:8]}")
    reference = tk.Limiter(tk.SlidingWindow(20, "1s", buckets=4), clock=clock)

    async def run() -> None:
        lim = tk.AsyncLimiter(tk.SlidingWindow(20, "1s", buckets=4), store=store, clock=clock)
        got = await asyncio.gather(*(lim.check(f"k{i % 3}") for i in range(30)))
        assert list(got) == [reference.check(f"k{i % 3}") for i in range(30)]
        with redis.Redis.from_url(REDIS_URL) as sync:
            sync.script_flush()
        assert await lim.check("k0") == reference.check("k0")  # NOSCRIPT -> SCRIPT LOAD -> retry
        assert await lim.check_many(["a", "b", "a"]) == reference.check_many(["a", "b", "a"])
        with pytest.raises(tk.ScriptError):
            await store.aeval("no_such_transform", ["k"], 0, [])
        await store.aclose()

    asyncio.run(run())


def test_pipelined_store_selects_the_database_and_reports_outages() -> None:
    url = REDIS_URL.rsplit("/", 1)[0] + "/3"
    store = PipelinedRedisStore(url, prefix=f"db-{uuid.uuid4().hex[:8]}")

    async def run() -> None:
        assert await store.ping()
        lim = tk.AsyncLimiter(tk.FixedWindow(5, "1m"), store=store)
        assert (await lim.check("k")).remaining == 4
        await store.aclose()
        dead = PipelinedRedisStore("redis://127.0.0.1:1/0")
        with pytest.raises(tk.StoreError, match="cannot connect"):
            await tk.AsyncLimiter(tk.FixedWindow(5, "1m"), store=dead).check("k")

    asyncio.run(run())
    with redis.Redis.from_url(url) as db3, redis.Redis.from_url(REDIS_URL) as db0:
        assert db3.keys(f"{store.prefix}:*") and not db0.keys(f"{store.prefix}:*")
    with pytest.raises(tk.ConfigError):
        PipelinedRedisStore("http://example:6380")
