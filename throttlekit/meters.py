"""Cost meters and shapers: the token budget (``debit``), the lease spender, the leaky-bucket shaper.

Each is a thin router over one or two Lua transforms; the decisions are computed in Lua.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import _validate as v_
from ._clock import SERVER_TIME, Clock
from ._errors import NotSupportedError, ThrottleKitError
from ._loader import DECISION_REPLY, reply_fields
from ._types import Decision
from .stores import MemoryStore, join_prefix, resolve_sync

__all__ = ["LeakyBucket", "LeaseGrant", "LeaseSpender", "Reservation", "TokenBudget"]


def _store(store: Any, clock: Clock | None) -> tuple[Any, bool]:
    """``(store, owned)``: None or a URL opens one through the store factory; a store object is used as is
    (a sync :class:`ScriptStore`, or an async one for the ``a*`` methods)."""
    return resolve_sync(store, clock)


def _tokens(v: Any) -> int:
    if v.__class__ is int and 0 < v <= v_.MAX_SAFE_INTEGER:
        return v
    return v_.integer("tokenBudget.tokens", v, 1, v_.MAX_SAFE_INTEGER)


def token_budget_params(budget: Any, window: Any) -> tuple[int, v_.Number]:
    """``(budget, window_ms)`` of a token budget, or a :class:`ConfigError` listing every bad field:
    ``budget`` >= 1 (floored to whole tokens) and a window the Lua can store (the config kinds use this
    too, so the rules live here once)."""
    c = v_.Checks("tokenBudget")
    b = c(v_.number, "budget", budget, low=1, low_open=False)
    w = c(v_.duration, "windowMs", window)
    c.done()
    return math.floor(b), w  # type: ignore[arg-type,return-value]


class TokenBudget:
    """A per-window budget on post-hoc costs (e.g. LLM output tokens), debited as they stream.

    A debit is admitted iff budget remained before it; the crossing debit counts in full (overshoot at
    most ``tokens - 1``); later debits in the window are refused with a retry to the window end.
    ``budget`` is floored to whole tokens and must be >= 1 (a budget in (0, 1) would refuse every
    debit). On a shared store (Redis) every
    process debits one budget per key.
    """

    def __init__(
        self,
        budget: float,
        window: float | str,
        *,
        store: Any = None,
        prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        self.budget, self.window_ms = token_budget_params(budget, window)
        self.store, self._owned = _store(store, clock)
        self.clock = clock
        self._kp = join_prefix(getattr(self.store, "prefix", ""), prefix)

    def _now(self) -> float:
        return SERVER_TIME if self.clock is None else self.clock.now_ms()

    def debit(self, key: str, tokens: int = 1) -> Decision:
        """Debit ``tokens`` (a positive integer) from ``key``'s window budget."""
        n = _tokens(tokens)
        r = self.store.eval(
            "token_budget_debit", (self._kp + key,), self._now(), (self.window_ms, self.budget, n)
        )
        return _debit_decision(r)

    async def adebit(self, key: str, tokens: int = 1) -> Decision:
        """:meth:`debit` on an async store (``aeval``): the server's path."""
        n = _tokens(tokens)
        r = await self.store.aeval(
            "token_budget_debit", (self._kp + key,), self._now(), (self.window_ms, self.budget, n)
        )
        return _debit_decision(r)

    def remaining(self, key: str) -> int:
        """Tokens left in ``key``'s current window."""
        r = self.store.eval(
            "token_budget_remaining", (self._kp + key,), self._now(), (self.window_ms, self.budget)
        )
        return int(reply_fields("token_budget_remaining", "remaining")(r))

    def reset(self, key: str) -> None:
        self.store.delete(self._kp + key)

    def close(self) -> None:
        if self._owned:
            self.store.close()


def _as_decision(fields: Sequence[Any]) -> Decision:
    """A Decision from the five decision fields in :data:`DECISION_REPLY` order (``allowed`` is 1/0)."""
    allowed, limit, remaining, reset_at, retry_after_ms = fields
    return Decision(allowed == 1, limit, remaining, reset_at, retry_after_ms)


def _debit_decision(r: Sequence[Any]) -> Decision:
    return _as_decision(reply_fields("token_budget_debit", *DECISION_REPLY)(r))


_lease_ids = itertools.count(1)
_shared_store: MemoryStore | None = None


def _lease_store() -> MemoryStore:
    global _shared_store
    if _shared_store is None:
        _shared_store = MemoryStore()
    return _shared_store


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A grant from the server: ``capacity`` units usable until ``expires_at`` (epoch ms, the window end)."""

    capacity: int
    expires_at: int


class LeaseSpender:
    """Spend a server-granted chunk of a global budget locally; never invents a denial.

    ``apply_lease(grant)`` (a :class:`LeaseGrant`, or ``apply_lease(capacity, expires_at)``) adds credits
    (the grant's expiry replaces the previous one). ``spend(now, cost)`` returns a synthesized allow or
    ``None`` ("refresh needed"). With ``window_coupled`` (default) credits left when the grant's window
    has ended are discarded on the next spend. Lease state lives in a memory store (a shared one by
    default); ``close()`` frees it.
    """

    def __init__(
        self, limit: int, ttl_ms: int = 0, *, window_coupled: bool = True, store: Any = None, prefix: str = ""
    ) -> None:
        self.limit = limit
        self.ttl_ms = ttl_ms
        self.window_coupled = window_coupled
        self.store = store or _lease_store()
        self.key = f"{join_prefix(getattr(self.store, 'prefix', ''), prefix)}lease:{next(_lease_ids)}"

    def apply_lease(
        self,
        capacity: float | LeaseGrant | None = None,
        expires_at: int | None = None,
        *,
        grant: LeaseGrant | None = None,
    ) -> None:
        """Add a grant: a :class:`LeaseGrant` (positionally or as ``grant=``), or ``capacity`` units whose
        window ends at ``expires_at`` (epoch ms, or None)."""
        if grant is None and isinstance(capacity, LeaseGrant):
            grant = capacity
        if grant is not None:
            capacity, expires_at = grant.capacity, grant.expires_at
        if capacity is None:
            raise TypeError("apply_lease() needs a LeaseGrant or a capacity")
        v_.number("lease capacity", capacity, low=0, low_open=False)
        exp = -1 if expires_at is None else expires_at
        self.store.eval("lease_grant", (self.key,), 0, (capacity, exp))

    def _spend(self, now_ms: int, cost: float, discard: bool) -> Decision | None:
        v_.cost(cost)
        r = self.store.eval(
            "lease_spend",
            (self.key,),
            now_ms,
            (cost, self.limit, self.ttl_ms, 1 if self.window_coupled else 0, 1 if discard else 0),
        )
        refresh, *decision = reply_fields("lease_spend", "needs_refresh", *DECISION_REPLY)(r)
        if refresh == 1:
            return None
        return _as_decision(decision)

    def spend(self, now_ms: int | None = None, cost: float = 1, *, now: int | None = None) -> Decision | None:
        """Spend locally at ``now_ms`` (or ``now=``, epoch ms): an allow, or ``None`` when the lease cannot
        cover ``cost`` (refresh needed)."""
        at = now_ms if now is None else now
        if at is None:
            raise TypeError("spend() needs the time: spend(now_ms, cost) or spend(now=..., cost=...)")
        return self._spend(at, cost, True)

    def _state(self) -> dict[str, Any]:
        dump = getattr(self.store, "dump", None)
        if dump is None:
            raise NotSupportedError(f"{type(self.store).__name__} cannot show a lease's stored state")
        found = dump(self.key)
        return found[1] if found else {}

    @property
    def credits(self) -> float:
        """Credits held now, as stored (the window-coupled discard happens on the next spend)."""
        c = float(self._state().get("c", 0))
        return int(c) if c.is_integer() else c

    @property
    def expires_at(self) -> int | None:
        """Epoch ms the current grant's window ends, or None before any grant with an expiry."""
        e = self._state().get("e")
        return None if e is None else int(float(e))

    def spend_or_refresh(
        self,
        now_ms: int,
        cost: float,
        reserve: Callable[[float], Decision | tuple[float, int | None]],
        max_rounds: int = 1024,
    ) -> Decision:
        """Spend, asking ``reserve(cost)`` for grants on shortfall. ``reserve`` returns a denial
        :class:`Decision` (returned verbatim) or a grant ``(capacity, expires_at)``."""
        discard = True
        for _ in range(max_rounds):
            d = self._spend(now_ms, cost, discard)
            discard = False
            if d is not None:
                return d
            grant = reserve(cost)
            if isinstance(grant, Decision):
                return grant
            capacity, expires_at = grant
            if capacity <= 0:
                raise ThrottleKitError("zero-capacity grant without a denial")
            self.apply_lease(capacity, expires_at)
        raise ThrottleKitError(f"spend_or_refresh exceeded {max_rounds} rounds")

    def reset(self) -> None:
        self.store.delete(self.key)

    close = reset


class Reservation(tuple[bool, int]):
    """``(accepted, delay_ms)`` from :meth:`LeakyBucket.reserve`."""

    __slots__ = ()

    @property
    def accepted(self) -> bool:
        return self[0]

    @property
    def delay_ms(self) -> int:
        return self[1]


class LeakyBucket:
    """A shaper: schedules work at ``rate_per_sec`` instead of denying it, and rejects only when the
    wait would exceed ``max_queue_ms``. ``reserve`` returns (accepted, delay_ms)."""

    def __init__(
        self,
        rate_per_sec: float,
        max_queue_ms: float,
        *,
        store: Any = None,
        prefix: str = "",
        clock: Clock | None = None,
    ) -> None:
        c = v_.Checks("leakyBucket")
        rate = c(v_.number, "ratePerSec", rate_per_sec)
        if rate is not None:
            c(v_.span, "ratePerSec", "the interval 1000/ratePerSec", 1000 / rate)
        c(v_.number, "maxQueueMs", max_queue_ms, low=0, low_open=False, high=v_.MAX_DURATION_MS)
        c.done()
        self.rate_per_sec = rate_per_sec
        self.max_queue_ms = max_queue_ms
        self.store, self._owned = _store(store, clock)
        self.clock = clock
        self._kp = join_prefix(getattr(self.store, "prefix", ""), prefix)

    def reserve(self, key: str, cost: float = 1) -> Reservation:
        """Book ``cost`` units: accepted with the wait before proceeding, or rejected with the excess."""
        v_.cost(cost)
        now = SERVER_TIME if self.clock is None else self.clock.now_ms()
        r = self.store.eval(
            "leaky_bucket_reserve", (self._kp + key,), now, (self.rate_per_sec, self.max_queue_ms, cost)
        )
        accepted, delay_ms = reply_fields("leaky_bucket_reserve", "accepted", "delay_ms")(r)
        return Reservation((accepted == 1, delay_ms))

    def reset(self, key: str) -> None:
        self.store.delete(self._kp + key)

    def close(self) -> None:
        if self._owned:
            self.store.close()
