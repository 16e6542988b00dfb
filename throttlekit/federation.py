"""Federation: one per-window budget shared by every region (``docs/federation.md``).

The **coordinator** is a hash per key in the shared store (Redis or Postgres) holding what is left of the
key's budget for the store's current window. Its operations are Lua transforms: ``fed_lease`` grants up to
``tokens`` units (partial grants are legal) for the window running on the store's clock and tells the
caller when that window ends; ``fed_reconcile`` takes units of the running window back, once per window and
reconciler (a retried call changes nothing). A leftover of a window that has ended is forfeited, so no
window ever grants more than its budget.

A :class:`FederatedLimiter` (one per server instance) spends what it leased locally, window-coupled: it
leases ``batch`` units at a time from the coordinator, spends them in a private in-process store
(``lease_spend``, the same transform behind :class:`~throttlekit.LeaseSpender`) and discards whatever is
left when the window ends. So N instances admit at most the budget per window together (every unit
admitted was granted for that window), and at most N x batch units of a window go unused.

Python routes and coalesces; every number (grant, window end, the denial) comes out of the Lua.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _validate as v
from ._clock import SERVER_TIME, Clock
from ._types import Decision, make_decision
from .stores import join_prefix
from .strategies import Strategy
from .two_tier import TwoTierLimiter

__all__ = ["DEFAULT_BATCH", "DEFAULT_PREFIX", "Coordinator", "FederatedLimiter", "Grant", "Reconciled"]

log = logging.getLogger("throttlekit.federation")

#: Units an instance leases from the coordinator per round trip, by default.
DEFAULT_BATCH = 16
#: Key prefix of the coordinator's hashes, by default (the upstream's).
DEFAULT_PREFIX = "tk:fed"


@dataclass(frozen=True, slots=True)
class Grant:
    """What ``fed_lease`` granted: ``granted`` units (0 = refused) for the window ending at ``expires_at``
    (``ttl_ms`` from now), what the key's budget has left, and the request's decision when it must be
    answered from this grant (allowed iff the caller's units plus the grant cover its cost)."""

    granted: int
    expires_at: int
    ttl_ms: int
    budget_left: int
    decision: Decision


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What ``fed_reconcile`` did: ``credited`` units back into the budget (``applied`` False: nothing,
    because the window ended, the units were 0, or this reconciler already reconciled this window)."""

    credited: int
    budget_left: int
    applied: bool


def _grant(r: Any) -> Grant:
    return Grant(int(r[0]), int(r[1]), int(r[2]), int(r[3]), make_decision(r[4] == 1, r[5], r[6], r[7], r[8]))


class Coordinator:
    """The cross-region coordinator over a store: ``lease``/``reconcile`` (sync store) and
    ``alease``/``areconcile`` (asyncio store), each one transform call.

    ``window_ms`` and ``anchor`` (epoch ms a window starts at; 0 = epoch-aligned) define the windows on
    the store's clock; ``budget`` is the units per window of every key, ``budgets`` overrides it per key.
    Keys live at ``<store prefix>:<prefix>:<key>``. ``clock`` fixes ``now`` (tests); by default the store's
    clock decides (Redis ``TIME``: every region agrees on the boundary).
    """

    def __init__(
        self,
        store: Any,
        *,
        window_ms: float,
        budget: int,
        anchor: int = 0,
        prefix: str = DEFAULT_PREFIX,
        budgets: Mapping[str, int] | None = None,
        clock: Clock | None = None,
    ) -> None:
        c = v.Checks("coordinator")
        w = c(v.duration, "windowMs", window_ms)
        b = c(v.integer, "budget", budget, 1, v.MAX_SAFE_INTEGER)
        a = c(v.integer, "anchor", anchor, -v.MAX_SAFE_INTEGER, v.MAX_SAFE_INTEGER, " (epoch ms)")
        for k, n in (budgets or {}).items():
            c(v.integer, f"budgets[{k!r}]", n, 1, v.MAX_SAFE_INTEGER)
        c.done()
        assert w is not None and b is not None and a is not None  # done() raised otherwise
        self.store = store
        self.window_ms: float = w
        self.budget: int = b
        self.anchor: int = a
        self.budgets = dict(budgets or {})
        self.clock = clock
        self.prefix = prefix
        self._kp = join_prefix(getattr(store, "prefix", ""), prefix)

    def _now(self) -> float:
        return SERVER_TIME if self.clock is None else self.clock.now_ms()

    def budget_of(self, key: str) -> int:
        """Units per window of ``key`` (its own budget, else the default)."""
        return self.budgets.get(key, self.budget)

    def full_key(self, key: str) -> str:
        return self._kp + key

    def _lease_args(
        self, key: str, tokens: float, has: float, cost: float, for_expires_at: int | None
    ) -> Any:
        return (
            self.window_ms,
            self.anchor,
            self.budget_of(key),
            tokens,
            has,
            cost,
            -1 if for_expires_at is None else for_expires_at,
        )

    def lease(
        self, key: str, tokens: float, *, has: float = 0, cost: float = 1, for_expires_at: int | None = None
    ) -> Grant:
        """Lease up to ``tokens`` units of ``key``'s budget for the store's current window (or only for
        the window ending at ``for_expires_at``: any other window grants nothing)."""
        r = self.store.eval(
            "fed_lease",
            (self._kp + key,),
            self._now(),
            self._lease_args(key, tokens, has, cost, for_expires_at),
        )
        return _grant(r)

    async def alease(
        self, key: str, tokens: float, *, has: float = 0, cost: float = 1, for_expires_at: int | None = None
    ) -> Grant:
        """:meth:`lease` on an asyncio store."""
        r = await self.store.aeval(
            "fed_lease",
            (self._kp + key,),
            self._now(),
            self._lease_args(key, tokens, has, cost, for_expires_at),
        )
        return _grant(r)

    def _reconcile_args(self, key: str, leftover: float, window_start: int, reconciler: str) -> Any:
        return (self.window_ms, self.anchor, self.budget_of(key), leftover, window_start, reconciler)

    def reconcile(self, key: str, leftover: float, window_start: int, reconciler: str) -> Reconciled:
        """Give ``leftover`` units leased for the window starting at ``window_start`` back (only while that
        window runs; once per window per ``reconciler``)."""
        r = self.store.eval(
            "fed_reconcile",
            (self._kp + key,),
            self._now(),
            self._reconcile_args(key, leftover, window_start, reconciler),
        )
        return Reconciled(int(r[0]), int(r[1]), r[2] == 1)

    async def areconcile(self, key: str, leftover: float, window_start: int, reconciler: str) -> Reconciled:
        """:meth:`reconcile` on an asyncio store."""
        r = await self.store.aeval(
            "fed_reconcile",
            (self._kp + key,),
            self._now(),
            self._reconcile_args(key, leftover, window_start, reconciler),
        )
        return Reconciled(int(r[0]), int(r[1]), r[2] == 1)


#: Seconds a closing limiter spends giving its unspent units back to the coordinator, at most.
RETURN_TIMEOUT_S = 2.0


class FederatedLimiter(TwoTierLimiter):
    """An asyncio limiter admitting from a budget shared by every region: the leased two-tier engine
    (window-coupled) whose second tier is a :class:`Coordinator`.

    ``check(key, cost)`` spends local credits; when they fall short it leases ``max(batch, cost)`` units
    (one coordinator round trip, coalesced per key) and answers from the grant; a refusal is the
    coordinator's denial (``remaining`` = the units still held, ``retry_after_ms`` = the time to the
    window's end). ``batch`` above the budget is capped at it (a window never grants more). ``region``
    names this instance in reconciles. ``aclose()`` gives the current window's unspent units back.
    Coordinator failures raise :class:`~throttlekit.StoreError` (the server answers them fail-closed).
    """

    def __init__(
        self,
        strategy: Strategy,
        coordinator: Coordinator,
        *,
        batch: int = DEFAULT_BATCH,
        region: str = "default",
        max_keys: int = 100_000,
        clock: Clock | None = None,
    ) -> None:
        b = v.integer("batch", batch, 1, v.MAX_SAFE_INTEGER)
        super().__init__(
            strategy,
            store=coordinator.store,
            mode="leased",
            batch=min(b, max(1, int(strategy.limit_value))),
            window_coupled=True,
            max_keys=max_keys,
            clock=clock,
        )
        self.coordinator = coordinator
        self.region = region
        #: this instance's name in reconciles: unique, so two instances of one region both give back
        self.reconciler = f"{region}#{uuid.uuid4().hex[:12]}"
        #: coordinator round trips made (leases), for benchmarks and tests
        self.round_trips = 0

    async def _lease_and_spend(
        self, key: str, now: float, cost: float
    ) -> tuple[Decision, Decision | None, bool]:
        g = await self.coordinator.alease(key, max(self.batch, cost), has=self.credits(key), cost=cost)
        self.round_trips += 1
        if g.granted > 0:
            self._leases.grant(key, self.clock.now_ms(), g.granted, g.expires_at)
        return (g.decision, *self._leases.spend(key, now, cost, False))

    async def _grant(self, key: str, amount: float, proactive: bool) -> Decision:  # pragma: no cover
        raise AssertionError("a federated limiter leases through _lease_and_spend (no proactive refill)")

    async def reset(self, key: str) -> None:
        """Forget ``key`` locally and drop its coordinator state (its window budget starts over)."""
        self._entries.pop(key, None)
        self.l1.delete(key)
        await self.coordinator.store.adelete(self.coordinator.full_key(key))

    async def give_back(self) -> int:
        """Reconcile every key's unspent units of the running window; returns the units credited."""
        now = self.clock.now_ms()
        total = 0
        for key in list(self._entries):
            raw = self.l1.dump(key)
            if raw is None or raw[0] != "hash" or "e" not in raw[1]:
                continue
            credits, expires_at = float(raw[1].get("c", 0)), float(raw[1]["e"])
            if credits <= 0 or now >= expires_at:
                continue
            start = int(expires_at - self.coordinator.window_ms)
            r = await self.coordinator.areconcile(key, int(credits), start, self.reconciler)
            total += r.credited
            self._leases.forget(key)
        return total

    async def aclose(self) -> None:
        """Give the running window's unspent units back (bounded by ``RETURN_TIMEOUT_S``; failures are
        logged), then stop like a two-tier limiter."""
        if not self._closed:
            try:
                await asyncio.wait_for(self.give_back(), RETURN_TIMEOUT_S)
            except Exception as exc:
                log.warning("federated limiter: unspent units not given back on close: %s", exc)
        await super().aclose()

    def __repr__(self) -> str:
        c = self.coordinator
        return (
            f"FederatedLimiter(budget={c.budget}, window_ms={c.window_ms:g}, batch={self.batch}, "
            f"region={self.region!r}, store={c.store!r})"
        )
