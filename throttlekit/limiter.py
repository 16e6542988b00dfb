"""Limiters: route a key and a cost to the strategy's Lua transform on a store, and wrap the reply.

Nothing here computes a decision; the transform does. A limiter reads its clock once per call (once
per batch for ``check_many``); without a clock it sends the ``SERVER_TIME`` sentinel and the store's
clock decides (Redis ``TIME``: no skew across a fleet; the memory store's injected clock).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import time_ns as _time_ns
from typing import Any

from ._clock import SERVER_TIME, Clock, SystemClock
from ._errors import ConfigError, ScriptError
from ._types import Decision, Forecast, make_decision
from ._validate import MAX_SAFE_INTEGER as _MAX_COST
from .stores import MemoryStore, RedisStore, join_prefix, resolve_async, resolve_sync
from .strategies import Strategy, validate_cost

__all__ = ["AsyncLimiter", "Limiter"]


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise ConfigError(f"key must be a string, got {type(key).__name__} {key!r}")
    return key


def _decision(r: Sequence[Any]) -> Decision:
    return make_decision(r[0] == 1, r[1], r[2], r[3], r[4])


class _Base:
    _asynchronous = False  # a URL or None opens the async store (the factory decides which)

    def __init__(self, strategy: Strategy, store: Any, prefix: str, clock: Clock | None) -> None:
        if not isinstance(strategy, Strategy):
            raise ConfigError(
                f"strategy must be a throttlekit strategy (Gcra, TokenBucket, ...), got {strategy!r}"
            )
        if not isinstance(prefix, str):
            raise ConfigError(f"prefix must be a string, got {prefix!r}")
        store, self._owned = (resolve_async if self._asynchronous else resolve_sync)(store, clock)
        self.strategy = strategy
        self.store = store
        self.prefix = prefix
        self.clock = clock
        self._kp = join_prefix(getattr(store, "prefix", ""), prefix)
        self._params = tuple(strategy.params)

    def _now(self) -> float:
        return SERVER_TIME if self.clock is None else self.clock.now_ms()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.strategy!r}, store={self.store!r}, prefix={self.prefix!r})"


class Limiter(_Base):
    """A rate limiter over a synchronous store.

    ``Limiter(Gcra(10, "1s", burst=5))`` runs on a private memory store; pass ``store=`` a
    :class:`~throttlekit.MemoryStore`, :class:`~throttlekit.RedisStore` or a URL (``"redis://..."``).
    ``prefix`` namespaces keys (``"<store prefix>:<prefix>:<key>"``). ``clock`` (an object with
    ``now_ms()``) overrides the store's clock.
    """

    def __init__(
        self, strategy: Strategy, *, store: Any = None, prefix: str = "", clock: Clock | None = None
    ) -> None:
        super().__init__(strategy, store, prefix, clock)
        self._check = strategy.check_transform
        self._peek = strategy.peek_transform
        self._forecast = strategy.forecast_transform
        if isinstance(self.store, MemoryStore):
            self.check = self._memory_check()  # type: ignore[method-assign]
        elif isinstance(self.store, RedisStore):
            self.check = self._redis_check()  # type: ignore[method-assign]

    def check(self, key: str, cost: float = 1) -> Decision:
        """Consume ``cost`` (> 0) units for ``key``. A denial is a Decision with ``allowed=False``.

        Raises :class:`ConfigError` for a bad key or cost, :class:`StoreError` when the store fails.
        """
        if cost.__class__ is not int or cost <= 0 or cost > _MAX_COST:
            validate_cost(cost)
        if key.__class__ is not str:
            _key(key)
        return _decision(self.store.eval(self._check, (self._kp + key,), self._now(), (*self._params, cost)))

    def _memory_check(self) -> Callable[..., Decision]:
        """The memory store's hot path: a closure over a private copy of the transform with the strategy
        parameters bound, so one decision is one call into Lua (measured by ``tk bench``)."""
        store: MemoryStore = self.store
        run = store.engine.bound_runner(self._check, self._params)
        lua_error = store.engine.lua_error
        kp, name, clock, make = self._kp, self._check, self.clock, make_decision
        store_now = store.clock.now_ms
        system = clock is None and type(store.clock) is SystemClock

        def check(key: str, cost: float = 1) -> Decision:
            if cost.__class__ is not int or cost <= 0 or cost > _MAX_COST:
                validate_cost(cost)
            if key.__class__ is not str:
                _key(key)
            if system:
                t = _time_ns() // 1_000_000
                now = t
            else:
                t = store_now()
                now = t if clock is None else clock.now_ms()
            try:
                return make(*run(t, kp + key, now, cost))
            except lua_error as exc:
                raise ScriptError(name, "", str(exc)) from None

        check.__doc__ = Limiter.check.__doc__
        return check

    def _redis_check(self) -> Callable[..., Decision]:
        """The Redis store's hot path: the EVALSHA command's constant parts packed once."""
        run = self.store.bind(self._check, self._params)
        kp, clock, make = self._kp, self.clock, make_decision

        def check(key: str, cost: float = 1) -> Decision:
            if cost.__class__ is not int or cost <= 0 or cost > _MAX_COST:
                validate_cost(cost)
            if key.__class__ is not str:
                _key(key)
            r = run(kp + key, SERVER_TIME if clock is None else clock.now_ms(), cost)
            return make(r[0] == 1, r[1], r[2], r[3], r[4])

        check.__doc__ = Limiter.check.__doc__
        return check

    def check_many(self, keys: Sequence[str], cost: float = 1) -> list[Decision]:
        """Decide every key at one instant (one clock read, one store round trip); input order kept."""
        validate_cost(cost)
        full = [(self._kp + _key(k),) for k in keys]
        if not full:
            return []
        replies = self.store.eval_many(self._check, full, self._now(), (*self._params, cost))
        return [_decision(r) for r in replies]

    def peek(self, key: str) -> Decision:
        """What a cost-1 request would see now, without consuming anything."""
        return _decision(self.store.eval(self._peek, (self._kp + _key(key),), self._now(), self._params))

    def forecast(self, key: str, cost: float = 1) -> Forecast:
        """How many ``cost`` requests fit now and when capacity returns; consumes nothing."""
        validate_cost(cost)
        r = self.store.eval(self._forecast, (self._kp + _key(key),), self._now(), (*self._params, cost))
        return Forecast(r[0], r[1], r[2])

    def reset(self, key: str) -> None:
        """Forget ``key``'s state."""
        self.store.delete(self._kp + _key(key))

    def close(self) -> None:
        """Close the store if this limiter created it (idempotent)."""
        if self._owned:
            self.store.close()

    def __enter__(self) -> Limiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncLimiter(_Base):
    """The asyncio twin of :class:`Limiter`, over an async store (``PipelinedRedisStore``, which a
    ``redis://`` URL selects, ``AsyncRedisStore`` over a ``redis.asyncio`` client, the Postgres and
    DynamoDB stores) or the memory store."""

    _asynchronous = True

    def __init__(
        self, strategy: Strategy, *, store: Any = None, prefix: str = "", clock: Clock | None = None
    ) -> None:
        super().__init__(strategy, store, prefix, clock)

    async def check(self, key: str, cost: float = 1) -> Decision:
        """See :meth:`Limiter.check`."""
        validate_cost(cost)
        r = await self.store.aeval(
            self.strategy.check_transform, (self._kp + _key(key),), self._now(), (*self._params, cost)
        )
        return _decision(r)

    async def check_many(self, keys: Sequence[str], cost: float = 1) -> list[Decision]:
        """See :meth:`Limiter.check_many`."""
        validate_cost(cost)
        full = [(self._kp + _key(k),) for k in keys]
        if not full:
            return []
        replies = await self.store.aeval_many(
            self.strategy.check_transform, full, self._now(), (*self._params, cost)
        )
        return [_decision(r) for r in replies]

    async def peek(self, key: str) -> Decision:
        """See :meth:`Limiter.peek`."""
        r = await self.store.aeval(
            self.strategy.peek_transform, (self._kp + _key(key),), self._now(), self._params
        )
        return _decision(r)

    async def forecast(self, key: str, cost: float = 1) -> Forecast:
        """See :meth:`Limiter.forecast`."""
        validate_cost(cost)
        r = await self.store.aeval(
            self.strategy.forecast_transform, (self._kp + _key(key),), self._now(), (*self._params, cost)
        )
        return Forecast(r[0], r[1], r[2])

    async def reset(self, key: str) -> None:
        """See :meth:`Limiter.reset`."""
        await self.store.adelete(self._kp + _key(key))

    async def aclose(self) -> None:
        """Close the store if this limiter created it (idempotent)."""
        if self._owned:
            await self.store.aclose()

    async def __aenter__(self) -> AsyncLimiter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
