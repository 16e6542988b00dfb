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

With a **regional escrow** (:class:`RegionalEscrow`, spec 7.2: a hash per key in a second, regional store
shared by the instances of one region) the limiter leases from the escrow first and goes to the coordinator
only when the escrow is empty; a coordinator grant (``escrow_batch`` units) lands in the escrow and the
instance takes its ``batch`` out of it in the same step (``esc_refill``). Units in the escrow belong to the
window they were granted for and expire with it, so the per-window bound holds unchanged, and while the
coordinator is down (``regional-only``) the region keeps admitting from what its escrow holds, never more.

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
from ._errors import StoreError, loggable
from ._loader import DECISION_REPLY, load_manifest, reply_index
from ._types import Decision, make_decision
from .stores import join_prefix
from .strategies import Strategy
from .two_tier import TwoTierLimiter

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_ESCROW_PREFIX",
    "DEFAULT_HEALTH_CHECK_MS",
    "DEFAULT_PREFIX",
    "OUTAGE_MODES",
    "Coordinator",
    "EscrowGrant",
    "FederatedLimiter",
    "Grant",
    "Reconciled",
    "RegionalEscrow",
]

log = logging.getLogger("throttlekit.federation")

#: Units an instance leases from the coordinator per round trip, by default.
DEFAULT_BATCH = 16
#: Key prefix of the coordinator's hashes, by default (the upstream's).
DEFAULT_PREFIX = "tk:fed"
#: Key prefix of the regional escrow's hashes, by default (the upstream's ``RedisRegionalEscrow``).
DEFAULT_ESCROW_PREFIX = "tk:l2"
#: Milliseconds between two probes of an unhealthy coordinator (``regional-only``), by default.
DEFAULT_HEALTH_CHECK_MS = 5000
#: What a federated limiter does while the coordinator cannot be reached.
OUTAGE_MODES = ("fail-closed", "regional-only")
#: Leases one short check makes at most before it answers (each either spends or is a denial; more rounds
#: only happen when concurrent checks of the key spent the credits a lease brought).
MAX_LEASE_ROUNDS = 8


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


def _decoder(transform: str, fields: tuple[str, ...]) -> Any:
    """``reply -> (fields..., Decision)`` for a transform whose reply ends in a decision, by reply names."""
    at = reply_index(load_manifest()[transform], fields)
    a, lim, rem, rst, rty = reply_index(load_manifest()[transform], DECISION_REPLY)

    def decode(r: Any) -> tuple[Any, ...]:
        return (*(r[i] for i in at), make_decision(r[a] == 1, r[lim], r[rem], r[rst], r[rty]))

    return decode


_LEASE = _decoder("fed_lease", ("granted", "expires_at", "ttl_ms", "budget_left"))
_RECONCILED = reply_index(load_manifest()["fed_reconcile"], ("credited", "budget_left", "applied"))


def _grant(r: Any) -> Grant:
    granted, expires_at, ttl, left, d = _LEASE(r)
    return Grant(int(granted), int(expires_at), int(ttl), int(left), d)


def _reconciled(r: Any) -> Reconciled:
    c, b, a = (r[i] for i in _RECONCILED)
    return Reconciled(int(c), int(b), a == 1)


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
        return _reconciled(r)

    async def areconcile(self, key: str, leftover: float, window_start: int, reconciler: str) -> Reconciled:
        """:meth:`reconcile` on an asyncio store."""
        r = await self.store.aeval(
            "fed_reconcile",
            (self._kp + key,),
            self._now(),
            self._reconcile_args(key, leftover, window_start, reconciler),
        )
        return _reconciled(r)


@dataclass(frozen=True, slots=True)
class EscrowGrant:
    """What the regional escrow gave: ``granted`` units (``esc_lease``: taken from the escrow;
    ``esc_refill``: taken out of the refilled escrow), the ``balance`` the escrow keeps, the end of the
    window the units belong to (``expires_at``; 0 when the escrow held nothing live), whether a refill was
    ``applied`` (False: dropped, its window was over or the escrow holds a later one) and the request's
    decision when answered from this grant (allowed iff the caller's units plus the grant cover its cost)."""

    granted: int
    balance: int
    expires_at: int
    applied: bool
    decision: Decision


_ESC_LEASE = _decoder("esc_lease", ("granted", "balance", "expires_at"))
_ESC_REFILL = _decoder("esc_refill", ("taken", "balance", "expires_at", "applied"))
_ESC_RELEASE = reply_index(load_manifest()["esc_release"], ("released", "applied"))


def _esc_lease(r: Any) -> EscrowGrant:
    granted, balance, expires_at, d = _ESC_LEASE(r)
    return EscrowGrant(int(granted), int(balance), int(expires_at), int(granted) > 0, d)


def _esc_refill(r: Any) -> EscrowGrant:
    taken, balance, expires_at, applied, d = _ESC_REFILL(r)
    return EscrowGrant(int(taken), int(balance), int(expires_at), applied == 1, d)


class RegionalEscrow:
    """One region's escrow (L2, spec 7.2 ``RedisRegionalEscrow``) over a regional store: a hash per key at
    ``<store prefix>:<prefix>:<region>:<key>`` (fields ``balance``, ``expires_at``, ``source_lease``) holding
    units the region leased from the coordinator for one window (``namespace``: the policy's own key
    prefix, after the region). ``lease`` (``esc_lease``) takes up to
    ``tokens`` while that window runs; ``refill`` (``esc_refill``) adds a coordinator grant (dropped when
    its window is over, replacing an entry of an older window) and takes the caller's part in the same
    step; ``release`` (``esc_release``) takes the balance of a window and deletes the entry, first
    releaser wins. ``clock`` fixes ``now`` (tests); by default the regional store's clock decides."""

    def __init__(
        self,
        store: Any,
        *,
        region: str,
        window_ms: float,
        prefix: str = DEFAULT_ESCROW_PREFIX,
        namespace: str = "",
        clock: Clock | None = None,
    ) -> None:
        c = v.Checks("regionalEscrow")
        r = c(v.name, "region", region)
        w = c(v.duration, "windowMs", window_ms)
        c.done()
        assert r is not None and w is not None
        self.store = store
        self.region = r
        self.window_ms: float = w
        self.prefix = prefix
        self.clock = clock
        self._kp = join_prefix(getattr(store, "prefix", ""), prefix, r, namespace)

    def _now(self) -> float:
        return SERVER_TIME if self.clock is None else self.clock.now_ms()

    def full_key(self, key: str) -> str:
        return self._kp + key

    def lease(
        self, key: str, tokens: float, *, has: float = 0, cost: float = 1, limit: float = 0
    ) -> EscrowGrant:
        """Take up to ``tokens`` units of ``key``'s escrow (0 when it holds nothing for a running window)."""
        r = self.store.eval("esc_lease", (self._kp + key,), self._now(), (tokens, has, cost, limit))
        return _esc_lease(r)

    async def alease(
        self, key: str, tokens: float, *, has: float = 0, cost: float = 1, limit: float = 0
    ) -> EscrowGrant:
        """:meth:`lease` on an asyncio store."""
        r = await self.store.aeval("esc_lease", (self._kp + key,), self._now(), (tokens, has, cost, limit))
        return _esc_lease(r)

    def _refill_args(
        self, granted: float, window_start: int, take: float, has: float, cost: float, limit: float
    ) -> Any:
        return (self.window_ms, granted, window_start, take, has, cost, limit)

    def refill(
        self,
        key: str,
        granted: float,
        window_start: int,
        *,
        take: float = 0,
        has: float = 0,
        cost: float = 1,
        limit: float = 0,
    ) -> EscrowGrant:
        """Add ``granted`` units leased for the window starting at ``window_start``; take ``take`` of them."""
        r = self.store.eval(
            "esc_refill",
            (self._kp + key,),
            self._now(),
            self._refill_args(granted, window_start, take, has, cost, limit),
        )
        return _esc_refill(r)

    async def arefill(
        self,
        key: str,
        granted: float,
        window_start: int,
        *,
        take: float = 0,
        has: float = 0,
        cost: float = 1,
        limit: float = 0,
    ) -> EscrowGrant:
        """:meth:`refill` on an asyncio store."""
        r = await self.store.aeval(
            "esc_refill",
            (self._kp + key,),
            self._now(),
            self._refill_args(granted, window_start, take, has, cost, limit),
        )
        return _esc_refill(r)

    def release(self, key: str, window_start: int) -> tuple[int, bool]:
        """``(units, released?)``: the balance held for the window starting at ``window_start``, deleting
        the entry (0, False when the escrow holds another window or nothing: someone released first)."""
        r = self.store.eval("esc_release", (self._kp + key,), self._now(), (window_start,))
        n, applied = (r[i] for i in _ESC_RELEASE)
        return int(n), applied == 1

    async def arelease(self, key: str, window_start: int) -> tuple[int, bool]:
        """:meth:`release` on an asyncio store."""
        r = await self.store.aeval("esc_release", (self._kp + key,), self._now(), (window_start,))
        n, applied = (r[i] for i in _ESC_RELEASE)
        return int(n), applied == 1

    def __repr__(self) -> str:
        return f"RegionalEscrow(region={self.region!r}, window_ms={self.window_ms:g}, store={self.store!r})"


#: Seconds a closing limiter spends giving its unspent units back to the coordinator, at most.
RETURN_TIMEOUT_S = 2.0


class FederatedLimiter(TwoTierLimiter):
    """An asyncio limiter admitting from a budget shared by every region: the leased two-tier engine
    (window-coupled) whose second tier is a :class:`Coordinator` (spec 7.1).

    ``check(key, cost)`` spends local credits; when they fall short it leases ``max(batch, cost)`` units
    (coalesced per key) and answers from the grant; a refusal is the Lua's denial (``remaining`` = the
    units still held, ``retry_after_ms`` = the time to the window's end). ``batch`` above the budget is
    capped at it (a window never grants more). ``region`` names this instance in reconciles.

    With an ``escrow`` (a :class:`RegionalEscrow` on the region's store) a short check leases from the
    escrow first; only when it is empty does it go to the coordinator, for ``max(escrow_batch, cost)``
    units (default ``4 x batch``, capped at the budget), which land in the escrow while this instance takes
    its part in the same call. An escrow failure counts as an empty escrow (a coordinator grant then goes
    to this instance whole). ``on_outage``: ``"fail-closed"`` tries the coordinator on every short check
    and raises :class:`~throttlekit.StoreError` when it fails (the server answers fail-closed);
    ``"regional-only"`` (with an escrow) keeps serving from the escrow and stops asking the coordinator
    for ``health_check_ms`` after a failure: the next short check after that is the probe. Without an
    escrow ``regional-only`` is fail-closed. ``aclose()`` gives the current window's unspent local units
    back to the coordinator.
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
        escrow: RegionalEscrow | None = None,
        escrow_batch: int | None = None,
        on_outage: str = "fail-closed",
        health_check_ms: float = DEFAULT_HEALTH_CHECK_MS,
    ) -> None:
        c = v.Checks("federated")
        b = c(v.integer, "batch", batch, 1, v.MAX_SAFE_INTEGER)
        eb = (
            None if escrow_batch is None else c(v.integer, "escrowBatch", escrow_batch, 1, v.MAX_SAFE_INTEGER)
        )
        c(v.choice, "onCoordinatorOutage", on_outage, OUTAGE_MODES)
        hc = c(v.duration, "coordinatorHealthCheckMs", health_check_ms, strings=False)
        c.done()
        assert b is not None and hc is not None
        cap = max(1, int(strategy.limit_value))
        super().__init__(
            strategy,
            store=coordinator.store,
            mode="leased",
            batch=min(b, cap),
            window_coupled=True,
            max_keys=max_keys,
            clock=clock,
        )
        self.coordinator = coordinator
        self.region = region
        self.escrow = escrow
        #: units the region leases from the coordinator per round trip (into the escrow)
        self.escrow_batch = min(eb if eb is not None else 4 * self.batch, cap)
        self.on_outage = on_outage
        self.health_check_ms: float = hc
        #: this instance's name in reconciles: unique, so two instances of one region both give back
        self.reconciler = f"{region}#{uuid.uuid4().hex[:12]}"
        #: coordinator round trips made (leases), for benchmarks and tests
        self.round_trips = 0
        #: regional escrow round trips made (leases and refills)
        self.escrow_trips = 0
        #: regional-only: the coordinator is not asked before this instant (ms, this limiter's clock)
        self._probe_at = 0.0
        self._escrow_failures = 0

    @property
    def regional_only(self) -> bool:
        """True when a coordinator outage is served from the regional escrow (an escrow is configured)."""
        return self.on_outage == "regional-only" and self.escrow is not None

    @property
    def coordinator_healthy(self) -> bool:
        """False while ``regional-only`` skips the coordinator after a failure (until the next probe)."""
        return self._probe_at == 0

    async def _lease_and_spend(
        self, key: str, now: float, cost: float
    ) -> tuple[Decision, Decision | None, bool]:
        d: Decision | None = None
        for _ in range(MAX_LEASE_ROUNDS):
            lease = await self._obtain(key, cost)
            d, refill = self._leases.spend(key, now, cost, False)
            if d is not None:
                return lease, d, refill
            if not lease.allowed:
                return lease, None, False
        # every lease was spent by concurrent checks of the key before this one: ask for nothing, so the
        # coordinator's reply is this request's denial (has < cost)
        g = await self.coordinator.alease(key, 0, has=self.credits(key), cost=cost)
        return g.decision, None, False

    async def _obtain(self, key: str, cost: float) -> Decision:
        """One lease for a short check: from the escrow, else from the coordinator (through the escrow).
        Whatever is granted lands in the local credits; returns the Lua's decision for the request."""
        has = self.credits(key)
        limit = self.coordinator.budget_of(key)
        want = max(self.batch, cost) - has
        escrow = self.escrow
        if escrow is not None and want > 0:
            e = await self._escrow_call(escrow.alease(key, want, has=has, cost=cost, limit=limit))
            if e is not None and e.granted > 0:
                self._leases.grant(key, self.clock.now_ms(), e.granted, e.expires_at)
                if e.decision.allowed:
                    return e.decision
                has, want = has + e.granted, want - e.granted  # not enough yet: on to the coordinator
        if self._probe_at and self.regional_only:
            t = self.clock.now_ms()
            if t < self._probe_at:
                raise StoreError(
                    f"federated: the coordinator is unhealthy (regional-only: serving from the regional escrow, "
                    f"which is empty for this key; next probe in {self._probe_at - t:.0f} ms)"
                )
        tokens = max(self.escrow_batch if escrow is not None else self.batch, cost)
        try:
            g = await self.coordinator.alease(key, tokens, has=has, cost=cost)
        except StoreError as exc:
            if self.regional_only:
                if self._probe_at == 0:
                    log.warning(
                        "federated (region %r): coordinator unavailable (%s); serving from the regional escrow, "
                        "probing every %g ms",
                        self.region,
                        loggable(exc),
                        self.health_check_ms,
                    )
                self._probe_at = self.clock.now_ms() + self.health_check_ms
            raise
        if self._probe_at:
            self._probe_at = 0
            log.warning("federated (region %r): coordinator reachable again", self.region)
        self.round_trips += 1
        if escrow is None or g.granted <= 0:
            if g.granted > 0:
                self._leases.grant(key, self.clock.now_ms(), g.granted, g.expires_at)
            return g.decision
        start = g.expires_at - int(self.coordinator.window_ms)
        r = await self._escrow_call(
            escrow.arefill(key, g.granted, start, take=max(want, 0), has=has, cost=cost, limit=limit)
        )
        if r is None:  # the escrow cannot take it: the grant goes to this instance whole
            self._leases.grant(key, self.clock.now_ms(), g.granted, g.expires_at)
            return g.decision
        if r.granted > 0:
            self._leases.grant(key, self.clock.now_ms(), r.granted, r.expires_at)
        return r.decision

    async def _escrow_call(self, call: Any) -> EscrowGrant | None:
        """Await an escrow call; a store failure is an empty escrow (logged on the first of a run)."""
        self.escrow_trips += 1
        try:
            r: EscrowGrant = await call
        except StoreError as exc:
            if self._escrow_failures == 0:
                log.warning(
                    "federated (region %r): regional escrow unavailable: %s", self.region, loggable(exc)
                )
            self._escrow_failures += 1
            return None
        if self._escrow_failures:
            self._escrow_failures = 0
            log.warning("federated (region %r): regional escrow reachable again", self.region)
        return r

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
        escrow = "" if self.escrow is None else f", escrow={self.escrow!r}, escrow_batch={self.escrow_batch}"
        return (
            f"FederatedLimiter(budget={c.budget}, window_ms={c.window_ms:g}, batch={self.batch}, "
            f"region={self.region!r}, store={c.store!r}{escrow})"
        )
