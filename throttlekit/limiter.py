"""Limiters: route a key and a cost to the strategy's Lua transform on a store, and wrap the reply.

Nothing here computes a decision; the transform does. A limiter reads its clock once per call (once
per batch for ``check_many``); without a clock it sends the ``SERVER_TIME`` sentinel and the store's
clock decides (Redis ``TIME``: no skew across a fleet; the memory store's injected clock).

A limiter is typed against the store protocols only: ``check`` runs the callable the store's
``bind``/``abind`` returned (each store's fast path lives there), arguments are packed by the
manifest's ARGV names (:meth:`Strategy.arguments`) and replies read by its reply names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._clock import SERVER_TIME, Clock
from ._errors import ConfigError, as_script_error, quote
from ._loader import DECISION_REPLY, FORECAST_REPLY, load_manifest, reply_index
from ._types import Decision, Forecast, decision_of, make_decision
from ._validate import MAX_SAFE_INTEGER as _MAX_COST
from .stores import join_prefix, resolve_async, resolve_sync
from .stores.base import Reply
from .strategies import Strategy, validate_cost

__all__ = ["AsyncLimiter", "Limiter"]


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise ConfigError(f"key must be a string, got {type(key).__name__} {quote(key)}")
    return key


def decision_decoder(transform: str) -> Callable[[Reply], Decision]:
    """``reply -> Decision`` for a decision transform, reading the fields by the manifest's reply names
    (:func:`~throttlekit._types.decision_of`, one unpacking, when they are in ``DECISION_REPLY`` order)."""
    a, lim, rem, rst, rty = reply_index(load_manifest()[transform], DECISION_REPLY)
    if (a, lim, rem, rst, rty) == (0, 1, 2, 3, 4) and len(load_manifest()[transform].reply) == 5:
        return decision_of
    make = make_decision

    def decode(r: Reply) -> Decision:
        return make(r[a] == 1, r[lim], r[rem], r[rst], r[rty])

    return decode


def forecast_decoder(transform: str) -> Callable[[Reply], Forecast]:
    """``reply -> Forecast`` for a forecast transform, by the manifest's reply names."""
    s, n, f = reply_index(load_manifest()[transform], FORECAST_REPLY)

    def decode(r: Reply) -> Forecast:
        return Forecast(r[s], r[n], r[f])

    return decode


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
        self._check = strategy.check_transform
        self._peek = strategy.peek_transform
        self._forecast = strategy.forecast_transform
        self._params = strategy.arguments(self._check)
        self._peek_args = strategy.arguments(self._peek)
        self._forecast_args = strategy.arguments(self._forecast)
        self._decode = decision_decoder(self._check)
        self._decode_peek = decision_decoder(self._peek)
        self._decode_forecast = forecast_decoder(self._forecast)

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
        self.check = self._bound_check()  # type: ignore[method-assign]

    def check(self, key: str, cost: float = 1) -> Decision:
        """Consume ``cost`` (> 0) units for ``key``. A denial is a Decision with ``allowed=False``.

        Raises :class:`ConfigError` for a bad key or cost, :class:`StoreError` when the store fails.
        """
        return self._bound_check()(key, cost)

    def _bound_check(self) -> Callable[..., Decision]:
        """``check`` over the store's bound call: the constant ARGV prepared once by the store. The call
        is unguarded (the memory store skips a ``pcall``): a script fault is converted here, in the
        ``except`` clause, which costs nothing until it runs."""
        run = self.store.bind(self._check, self._params, guarded=False)
        kp, clock, top, server = self._kp, self.clock, _MAX_COST, SERVER_TIME
        decode = self._decode
        name, sha = self._check, load_manifest()[self._check].sha

        if clock is None and not kp:  # the common embedded case: no prefix to join, the store's clock

            def check(key: str, cost: float = 1) -> Decision:
                if cost.__class__ is not int or cost <= 0 or cost > top:
                    validate_cost(cost)
                if key.__class__ is not str:
                    _key(key)
                try:
                    r = run(key, server, cost)
                except Exception as exc:
                    raise as_script_error(name, sha, exc) from None
                return decode(r)

        elif clock is None:

            def check(key: str, cost: float = 1) -> Decision:
                if cost.__class__ is not int or cost <= 0 or cost > top:
                    validate_cost(cost)
                if key.__class__ is not str:
                    _key(key)
                try:
                    r = run(kp + key, server, cost)
                except Exception as exc:
                    raise as_script_error(name, sha, exc) from None
                return decode(r)

        else:
            now_ms = clock.now_ms

            def check(key: str, cost: float = 1) -> Decision:
                if cost.__class__ is not int or cost <= 0 or cost > top:
                    validate_cost(cost)
                if key.__class__ is not str:
                    _key(key)
                try:
                    r = run(kp + key, now_ms(), cost)
                except Exception as exc:
                    raise as_script_error(name, sha, exc) from None
                return decode(r)

        check.__doc__ = Limiter.check.__doc__
        return check

    def check_at(self, key: str, now_ms: float, cost: float = 1) -> Decision:
        """:meth:`check` at an explicit instant (epoch ms) instead of the clock: deterministic replay."""
        validate_cost(cost)
        return self._decode(
            self.store.eval(self._check, (self._kp + _key(key),), now_ms, (*self._params, cost))
        )

    def check_many(self, keys: Sequence[str], cost: float = 1) -> list[Decision]:
        """Decide every key at one instant (one clock read, one store round trip); input order kept."""
        validate_cost(cost)
        kp = self._kp
        full = [(kp + (k if k.__class__ is str else _key(k)),) for k in keys]
        if not full:
            return []
        replies = self.store.eval_many(self._check, full, self._now(), (*self._params, cost))
        return list(map(self._decode, replies))

    def peek(self, key: str) -> Decision:
        """What a cost-1 request would see now, without consuming anything."""
        return self._decode_peek(
            self.store.eval(self._peek, (self._kp + _key(key),), self._now(), self._peek_args)
        )

    def forecast(self, key: str, cost: float = 1) -> Forecast:
        """How many ``cost`` requests fit now and when capacity returns; consumes nothing."""
        validate_cost(cost)
        r = self.store.eval(
            self._forecast, (self._kp + _key(key),), self._now(), (*self._forecast_args, cost)
        )
        return self._decode_forecast(r)

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

        self._acall = self.store.abind(self._check, self._params)

    async def check(self, key: str, cost: float = 1) -> Decision:
        """See :meth:`Limiter.check`."""
        if cost.__class__ is not int or cost <= 0 or cost > _MAX_COST:
            validate_cost(cost)
        return self._decode(await self._acall(self._kp + _key(key), self._now(), cost))

    async def check_at(self, key: str, now_ms: float, cost: float = 1) -> Decision:
        """See :meth:`Limiter.check_at`."""
        validate_cost(cost)
        r = await self.store.aeval(self._check, (self._kp + _key(key),), now_ms, (*self._params, cost))
        return self._decode(r)

    async def check_many(self, keys: Sequence[str], cost: float = 1) -> list[Decision]:
        """See :meth:`Limiter.check_many`."""
        validate_cost(cost)
        full = [(self._kp + _key(k),) for k in keys]
        if not full:
            return []
        replies = await self.store.aeval_many(self._check, full, self._now(), (*self._params, cost))
        decode = self._decode
        return [decode(r) for r in replies]

    async def peek(self, key: str) -> Decision:
        """See :meth:`Limiter.peek`."""
        r = await self.store.aeval(self._peek, (self._kp + _key(key),), self._now(), self._peek_args)
        return self._decode_peek(r)

    async def forecast(self, key: str, cost: float = 1) -> Forecast:
        """See :meth:`Limiter.forecast`."""
        validate_cost(cost)
        r = await self.store.aeval(
            self._forecast, (self._kp + _key(key),), self._now(), (*self._forecast_args, cost)
        )
        return self._decode_forecast(r)

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
