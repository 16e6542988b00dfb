"""RedisBackend over throttlekit-py's ``RedisClientLike``: any object with only ``evalsha`` and ``eval``.

On a redis-server of the test's own (it starts with no scripts, so the first call meets NOSCRIPT), the
backends decide exactly as the embedded limiter does, through those two methods alone; ``now=`` replays a
known clock (``now=0`` is the Redis clock, as in throttlekit-py); a stopped server is a StoreError, a
client failing in its own way a ThrottleKitError, never a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

import throttlekit as tk
from tests._support.redis_server import OwnRedis

NOW = 1_800_000_000_000
STRATEGY = tk.Gcra(limit=10, period_ms=3_600_000, burst=3)


class OnlyScripts:
    """A client offering ``evalsha`` and ``eval`` and nothing else; records which it was asked."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.calls.append("evalsha")
        return self._client.evalsha(sha, numkeys, *keys_and_args)

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.calls.append("eval")
        return self._client.eval(script, numkeys, *keys_and_args)


class AsyncOnlyScripts(OnlyScripts):
    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:  # type: ignore[override]
        self.calls.append("evalsha")
        return await self._client.evalsha(sha, numkeys, *keys_and_args)

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:  # type: ignore[override]
        self.calls.append("eval")
        return await self._client.eval(script, numkeys, *keys_and_args)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _rows(ds: list[tk.Decision]) -> list[tuple[Any, ...]]:
    return [(d.allowed, d.limit, d.remaining, d.reset_at, d.retry_after_ms) for d in ds]


def test_a_client_with_only_evalsha_and_eval_decides_as_the_embedded_limiter(own_redis: OwnRedis) -> None:
    client = OnlyScripts(own_redis.client())
    assert isinstance(client, tk.RedisClientLike)
    backend = tk.RedisBackend(client, STRATEGY, prefix="app")
    reference = tk.Limiter(STRATEGY, clock=tk.ManualClock(NOW))
    times = [NOW, NOW, NOW + 10, NOW + 20, NOW + 400_000]
    ours = [backend.check("k", now=t) for t in times]
    expected = []
    for t in times:
        reference.clock.set(t)  # type: ignore[union-attr]
        expected.append(reference.check("k"))
    assert _rows(ours) == _rows(expected)
    assert client.calls[:3] == ["evalsha", "eval", "evalsha"]  # NOSCRIPT once, then cached by EVAL
    assert own_redis.client().exists("app:k") == 1  # throttlekit-py's key scheme: prefix:key
    backend.reset("k")  # DEL through a one-line script
    assert own_redis.client().exists("app:k") == 0
    assert backend.peek("k").remaining == 3
    assert [d.allowed for d in backend.check_many(["a", "b"])] == [True, True]


def test_now_zero_is_the_redis_clock(own_redis: OwnRedis) -> None:
    backend = tk.RedisBackend(OnlyScripts(own_redis.client()), STRATEGY)
    server_ms = int(own_redis.client().time()[0]) * 1000
    for d in (backend.check("z", now=0), backend.check("z")):  # epoch 0 would give reset_at ~ 360000
        assert server_ms - 5_000 <= d.reset_at <= server_ms + 3 * 360_000 + 5_000


def test_the_async_backend_over_an_async_client_like(own_redis: OwnRedis) -> None:
    async def run() -> tuple[list[tk.Decision], list[str]]:
        raw = aredis.Redis(host="127.0.0.1", port=own_redis.port)
        client = AsyncOnlyScripts(raw)
        backend = tk.AsyncRedisBackend(client, STRATEGY, prefix="a")
        try:
            return [await backend.check("k", now=NOW) for _ in range(4)], client.calls
        finally:
            await raw.aclose()

    ds, calls = asyncio.run(run())
    assert [d.allowed for d in ds] == [True, True, True, False]
    assert calls[:2] == ["evalsha", "eval"] and set(calls[2:]) == {"evalsha"}


def test_a_stopped_server_is_a_store_error_and_a_foreign_failure_a_throttlekit_error(
    own_redis: OwnRedis,
) -> None:
    backend = tk.RedisBackend(OnlyScripts(own_redis.client()), STRATEGY)
    assert backend.check("k").allowed
    own_redis.stop()
    with pytest.raises(tk.StoreError) as info:
        backend.check("k")
    assert isinstance(info.value, tk.ServiceUnavailableError)
    assert isinstance(info.value.store_error, redis.ConnectionError)

    class Broken:
        def evalsha(self, *args: Any) -> Any:
            raise RuntimeError("the client broke")

        def eval(self, *args: Any) -> Any:
            raise RuntimeError("the client broke")

    with pytest.raises(tk.ThrottleKitError, match="the client broke"):
        tk.RedisBackend(Broken(), STRATEGY).check("k")

    class Refusing:
        def evalsha(self, *args: Any) -> Any:
            raise ConnectionRefusedError("refused")

        eval = evalsha

    with pytest.raises(tk.StoreError, match="refused"):
        tk.RedisBackend(Refusing(), STRATEGY).check("k")
