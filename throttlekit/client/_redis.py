"""Direct Redis backends: the engine's Lua straight against a shared Redis, no server in between.

Thin wrappers over :class:`~throttlekit.Limiter` / :class:`~throttlekit.AsyncLimiter` on a
:class:`~throttlekit.RedisStore` / :class:`~throttlekit.AsyncRedisStore`: the same transforms, keys and
encodings as the server's Redis store, so a server and these backends on one Redis share one limit per
``(prefix, key)``. By default Redis ``TIME`` is the clock (no skew across a fleet).

``client`` may be a redis-py client or any object with ``evalsha``/``eval`` (:class:`RedisClientLike`,
throttlekit-py's shape): the store then sends every command through those two methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from .._clock import Clock
from .._types import Decision, Forecast
from ..limiter import AsyncLimiter, Limiter
from ..stores import AsyncRedisStore, RedisStore, open_async, open_sync
from ..strategies import Strategy

__all__ = ["AsyncRedisBackend", "AsyncRedisClientLike", "RedisBackend", "RedisClientLike"]


@runtime_checkable
class RedisClientLike(Protocol):
    """The least a Redis client must offer the backends: ``evalsha`` and ``eval`` (redis-py has both)."""

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: str | int) -> object: ...

    def eval(self, script: str, numkeys: int, *keys_and_args: str | int) -> object: ...


@runtime_checkable
class AsyncRedisClientLike(Protocol):
    """The async twin of :class:`RedisClientLike` (``redis.asyncio.Redis`` has both)."""

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: str | int) -> object: ...

    async def eval(self, script: str, numkeys: int, *keys_and_args: str | int) -> object: ...


class RedisBackend:
    """One strategy on a shared Redis. ``client`` is a ``redis.Redis`` (or pass ``url=``)."""

    def __init__(
        self,
        client: Any = None,
        strategy: Strategy | None = None,
        *,
        url: str | None = None,
        prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        if strategy is None:
            raise TypeError("RedisBackend needs a strategy, e.g. Gcra(100, '1m')")
        # a client is used as given; a URL goes through the store factory (its db, prefix and timeouts)
        self.store: Any = (
            RedisStore(client) if client is not None else open_sync(url or "redis://127.0.0.1:6379/0")
        )
        self.strategy = strategy
        self.limiter = Limiter(strategy, store=self.store, prefix=prefix, clock=clock)

    def check(self, key: str, cost: float = 1, *, now: int | None = None) -> Decision:
        """Consume ``cost`` for ``key``; ``now`` (epoch ms) replaces the clock for deterministic replay
        (``now=0`` means the Redis clock, as in throttlekit-py)."""
        if not now:
            return self.limiter.check(key, cost)
        return self.limiter.check_at(key, now, cost)

    def check_many(self, keys: Sequence[str], cost: float = 1) -> list[Decision]:
        return self.limiter.check_many(keys, cost)

    def peek(self, key: str) -> Decision:
        return self.limiter.peek(key)

    def forecast(self, key: str, cost: float = 1) -> Forecast:
        return self.limiter.forecast(key, cost)

    def reset(self, key: str) -> None:
        self.limiter.reset(key)

    def close(self) -> None:
        """Close the Redis client if this backend created it from ``url``."""
        self.store.close()

    def __enter__(self) -> RedisBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRedisBackend:
    """The asyncio twin of :class:`RedisBackend` (``client`` is a ``redis.asyncio.Redis``; with ``url=`` the
    pipelined store)."""

    def __init__(
        self,
        client: Any = None,
        strategy: Strategy | None = None,
        *,
        url: str | None = None,
        prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        if strategy is None:
            raise TypeError("AsyncRedisBackend needs a strategy, e.g. Gcra(100, '1m')")
        # a redis.asyncio client is used as given; a URL gets the pipelined store from the factory
        self.store: Any = (
            AsyncRedisStore(client) if client is not None else open_async(url or "redis://127.0.0.1:6379/0")
        )
        self.strategy = strategy
        self.limiter = AsyncLimiter(strategy, store=self.store, prefix=prefix, clock=clock)

    async def check(self, key: str, cost: float = 1, *, now: int | None = None) -> Decision:
        """See :meth:`RedisBackend.check`."""
        if not now:
            return await self.limiter.check(key, cost)
        return await self.limiter.check_at(key, now, cost)

    async def check_many(self, keys: Sequence[str], cost: float = 1) -> list[Decision]:
        return await self.limiter.check_many(keys, cost)

    async def peek(self, key: str) -> Decision:
        return await self.limiter.peek(key)

    async def forecast(self, key: str, cost: float = 1) -> Forecast:
        return await self.limiter.forecast(key, cost)

    async def reset(self, key: str) -> None:
        await self.limiter.reset(key)

    async def aclose(self) -> None:
        await self.store.aclose()

    async def __aenter__(self) -> AsyncRedisBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
