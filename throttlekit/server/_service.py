"""The service core: named policies bound to one store, the fail mode, and the outage log.

Transport-agnostic: the gRPC door (``_door.py``) only validates input, calls these methods and maps
errors to status codes. Every decision comes from the engine (a Lua transform); the one exception is
the decision synthesized for a store outage under ``fail`` (spec 4.4): ``allowed = fail == "open"``,
``limit`` = the strategy's limit, ``remaining`` = the limit when allowed else 0, ``reset_at`` = 0,
``retry_after_ms`` = 0.

Runtimes are typed against the store protocols only: a store whose ``inline`` is True (the memory store:
no I/O) is called synchronously on the event-loop thread (lupa is fast from one thread and slow across
threads), any other through its awaitable methods. The rate runtime's hot path (``check_reply``,
``check_many_replies``) hands the transform's reply items straight to the door, which builds the wire
message from them (no intermediate :class:`Decision`). A Redis URL becomes a pipelined store, so
concurrent requests share one write per loop tick on one connection.

Observation: every decision path ends in :meth:`_Runtime._observe`, which hands a
:class:`~throttlekit.server._telemetry.DecisionEvent` to the service's :class:`DecisionTap` (``service.tap``)
when an observer is registered (the telemetry hub, capture). A policy in shadow mode (``shadow: true``) is
decided, observed and counted as usual, and answered allowed.

Errors: every :class:`StoreError` is an outage answered per ``fail`` and logged once per burst
(:class:`OutageLog`); a transform's own failure is logged once per burst too (:class:`ErrorLog`), with its
detail, and the door answers the client a generic message. Log lines never carry a client key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Literal

from .._clock import SERVER_TIME, Clock
from .._errors import ConfigError, NotSupportedError, StoreError, ThrottleKitError, as_script_error, loggable
from .._loader import load_manifest
from .._types import Decision, Forecast, decision_of
from .._validate import name as v_name
from ..admission import policy_denial
from ..concurrency import (
    DEFAULT_LEASE_TTL_MS,
    Admitted,
    ConcurrencyGuard,
    Coordinator,
    Lease,
    LeaseTable,
    combine,
)
from ..config import (
    ConcurrencyPolicy,
    DistributedConcurrencyPolicy,
    FairEscrowPolicy,
    FederatedFairEscrowPolicy,
    FederatedPolicy,
    FleetBudgetPolicy,
    Policy,
    PolicyConfig,
    RatePolicy,
    TokenBudgetPolicy,
    TwoTierPolicy,
    load_config,
)
from ..fairness import FairEscrow, FederatedFairEscrow, RegionFairPool
from ..federation import Coordinator as FedCoordinator
from ..federation import FederatedLimiter, Grant, RegionalEscrow
from ..jointlp import BidFilter, JointLp
from ..limiter import AsyncLimiter, Limiter
from ..meters import TokenBudget
from ..stores import AsyncScriptStore, MemoryStore, ScriptStore, open_async
from ..stores._factory import store_kind
from ..stores.base import BoundedStore, Reply, join_prefix
from ..two_tier import TwoTierLimiter
from ._telemetry import DecisionTap

__all__ = [
    "EVICTION_REPORT_S",
    "ErrorLog",
    "EvictionLog",
    "FailMode",
    "OutageLog",
    "RateLimiterService",
    "UnknownPolicyError",
    "create_rate_limiter_service_from_config",
]

log = logging.getLogger("throttlekit.server")

FailMode = Literal["open", "closed"]


class UnknownPolicyError(ThrottleKitError, LookupError):
    """No policy of that name is configured (gRPC ``NOT_FOUND``)."""

    code = "not_found"

    def __init__(self, name: str, configured: Sequence[str]) -> None:
        listed = ", ".join(f'"{n}"' for n in configured) or "(none)"
        super().__init__(f'unknown policy "{name}"; configured policies: {listed}')
        self.policy = name


class EvictionLog:
    """Tells operators when a bounded store (the memory store, a policy's private in-process tier) evicts
    live keys at its ``max_keys``: one warning per store per :meth:`report` in which evictions grew, with
    the count, the bound and what to do. ``report`` is cheap (one counter read per store); the server
    calls it every ``EVICTION_REPORT_S`` seconds off the request path."""

    def __init__(self, stores: Sequence[tuple[str, BoundedStore]], logger: logging.Logger = log) -> None:
        self.stores = list(stores)
        self.log = logger
        self._seen = [int(s.stats()["evictions"]) for _, s in self.stores]

    def report(self) -> int:
        """Log each store whose evictions grew since the last report; returns the new evictions in all."""
        total = 0
        for i, (name, store) in enumerate(self.stores):
            stats = store.stats()
            grown = int(stats["evictions"]) - self._seen[i]
            if grown > 0:
                self._seen[i] += grown
                total += grown
                self.log.warning(
                    "%s: %d live keys evicted at max_keys=%d (least recently used first; %d evicted since "
                    "start): their limits restarted from fresh state; raise the bound (--memory-max-keys, "
                    "a policy's maxKeys) or use a shared store",
                    name,
                    grown,
                    stats["max_keys"],
                    stats["evictions"],
                )
        return total


#: Seconds between two eviction reports of a running server.
EVICTION_REPORT_S = 60.0


class OutageLog:
    """Logs a store outage once when it starts, a reminder at most every ``remind_s``, and once on recovery.

    ``failed`` and ``recovered`` are called on every decision; both are O(1) and cheap when nothing changes.
    Messages carry the error's text through :func:`~throttlekit._errors.loggable` (no client key).
    """

    def __init__(self, fail: FailMode, *, remind_s: float = 60.0, logger: logging.Logger = log) -> None:
        self.fail = fail
        self.remind_s = remind_s
        self.log = logger
        self.down = False
        self.synthesized = 0
        #: Store failures since start (monotonic; ``synthesized`` restarts with each outage).
        self.failures_total = 0
        self._since = 0.0
        self._reminded = 0.0

    def failed(self, exc: BaseException, decisions: int = 1) -> None:
        self.synthesized += decisions
        self.failures_total += 1
        now = time.monotonic()
        if not self.down:
            self.down, self._since, self._reminded = True, now, now
            self.log.warning(
                "store outage: %s; failing %s (synthesized decisions) until it recovers",
                loggable(exc),
                self.fail,
            )
        elif now - self._reminded >= self.remind_s:
            self._reminded = now
            self.log.warning(
                "store still down after %.0f s: %d decisions synthesized (fail %s); last error: %s",
                now - self._since,
                self.synthesized,
                self.fail,
                loggable(exc),
            )

    def recovered(self) -> None:
        if self.down:
            self.down = False
            self.log.warning(
                "store recovered after %.1f s; %d decisions were synthesized (fail %s)",
                time.monotonic() - self._since,
                self.synthesized,
                self.fail,
            )
            self.synthesized = 0


class ErrorLog:
    """Logs each kind of request failure once per burst: the first occurrence with its detail, then at
    most one line every ``remind_s`` per kind counting what was suppressed in between.

    ``report(kind, message)``: ``kind`` groups repeats (e.g. the policy and the error class), ``message``
    is logged as is (callers pass text already made loggable). O(1) per call.
    """

    def __init__(
        self, *, remind_s: float = 60.0, logger: logging.Logger = log, max_kinds: int = 1024
    ) -> None:
        self.remind_s = remind_s
        self.log = logger
        self.max_kinds = max_kinds
        self._last: dict[str, tuple[float, int]] = {}

    def report(self, kind: str, message: str) -> None:
        now = time.monotonic()
        seen = self._last.get(kind)
        if seen is None or now - seen[0] >= self.remind_s:
            suppressed = 0 if seen is None else seen[1]
            if seen is None and len(self._last) >= self.max_kinds:
                self._last.pop(next(iter(self._last)))
            self._last[kind] = (now, 0)
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            self.log.error("%s%s", message, more)
        else:
            self._last[kind] = (seen[0], seen[1] + 1)


def _unsupported(name: str, op: str) -> NotSupportedError:
    return NotSupportedError(f'policy "{name}" does not support {op}')


_decision = decision_of


def _allow(r: Reply) -> Reply:
    """A shadow policy's answer to a denial: allowed, the engine's numbers, no retry."""
    return (True, r[1], r[2], r[3], 0)


class _Runtime:
    """A policy bound to the service's store. Every op a kind does not serve is UNIMPLEMENTED (spec 4.4);
    a runtime overrides the ones it serves. ``limit`` feeds the fail-mode decision.

    Observation: each op a runtime serves ends its decision with :meth:`_observe` (or
    :meth:`_observe_decision`): the service's tap (``tap``, set by the service) sees one event per decision
    and a shadow policy's denial becomes an allow. ``telemetry_kind`` and ``strategy_name`` label the
    policy in the telemetry hub.

    The door calls ``check_reply`` (and ``check_many_replies``): reply items in the order of
    :class:`Decision`'s fields. When ``inline`` is True ``check_reply`` is a plain function (no await);
    otherwise it returns an awaitable. The Decision-returning methods serve the embedding API.
    """

    policy: Any
    outage: OutageLog
    limit: int
    inline = False
    tap: DecisionTap = DecisionTap()
    shadow = False
    telemetry_kind = "limiter"

    @property
    def strategy_name(self) -> str:
        strategy = getattr(self.policy, "strategy", None)
        return str(strategy.kind) if strategy is not None else ""

    def _observe(self, op: str, key: str, cost: int, r: Reply, t0: int, axis: str = "") -> Reply:
        """Emit ``r`` (reply items) to the tap if ``t0`` (the decision's start, ``perf_counter_ns``, 0 when
        nothing observed) is set; returns what the client is answered (a shadow denial allows)."""
        if t0:
            self.tap.observe(
                self.policy.name,
                self.telemetry_kind,
                op,
                key,
                cost,
                r,
                t0,
                r is self._failed,
                self.shadow,
                axis,
            )
        if self.shadow and r[0] != 1 and op != "peek":
            return _allow(r)
        return r

    def _observe_decision(self, op: str, key: str, cost: int, d: Decision, t0: int) -> Decision:
        """:meth:`_observe` for a path that yields a :class:`Decision`."""
        if not t0 and not self.shadow:
            return d
        r = (
            self._failed
            if d is self._failed_decision
            else (d.allowed, d.limit, d.remaining, d.reset_at, d.retry_after_ms)
        )
        out = self._observe(op, key, cost, r, t0)
        return d if out is r else _decision(out)

    def private_stores(self) -> list[tuple[str, BoundedStore]]:
        """The in-process stores this runtime owns (named), for the eviction report."""
        return []

    _failed: tuple[bool, int, int, int, int]

    def _fail_decision(self) -> None:
        allowed = self.outage.fail == "open"
        self._failed = (allowed, self.limit, self.limit if allowed else 0, 0, 0)
        self._failed_decision = _decision(self._failed)

    def _synthesize(self, exc: StoreError, decisions: int = 1) -> tuple[bool, int, int, int, int]:
        self.outage.failed(exc, decisions)
        return self._failed

    async def _decide(self, pending: Awaitable[Decision]) -> Decision:
        """Await a decision; a store outage becomes the fail-mode decision."""
        try:
            d = await pending
        except StoreError as exc:
            self._synthesize(exc)
            return self._failed_decision
        if self.outage.down:
            self.outage.recovered()
        return d

    def check_reply(self, key: str, cost: int) -> Any:
        return self._acheck_reply(key, cost)

    async def _acheck_reply(self, key: str, cost: int) -> Reply:
        d = await self.check(key, cost)
        return (d.allowed, d.limit, d.remaining, d.reset_at, d.retry_after_ms)

    async def check_many_replies(self, keys: Sequence[str], cost: int) -> list[Reply]:
        return [
            (d.allowed, d.limit, d.remaining, d.reset_at, d.retry_after_ms)
            for d in await self.check_many(keys, cost)
        ]

    async def check(self, key: str, cost: int) -> Decision:
        raise _unsupported(self.policy.name, "check")

    async def check_many(self, keys: Sequence[str], cost: int) -> list[Decision]:
        raise _unsupported(self.policy.name, "checkMany")

    async def peek(self, key: str) -> Decision:
        raise _unsupported(self.policy.name, "peek")

    async def forecast(self, key: str, cost: int) -> Forecast:
        raise _unsupported(self.policy.name, "forecast")

    def forecast_now(self, key: str) -> Forecast | None:
        """A cost-1 forecast read synchronously (the Lens Capacity view's hottest key), or None where
        the policy has no forecast or its store answers only asynchronously. Consumes nothing."""
        return None

    def fair_stats(self) -> dict[str, Any] | None:
        """A fair-escrow policy's window as monitoring shows it (``wfe_stats``), None for other kinds."""
        return None

    async def debit(self, key: str, tokens: int) -> Decision:
        raise _unsupported(self.policy.name, "debit")

    async def admit(self, key: str, cost: int, hold: int = 0, value: int = 1) -> Admitted:
        raise _unsupported(self.policy.name, "admit")

    async def astart(self) -> None:
        """Start the runtime's background work (a fleet heartbeat); the service calls it once serving."""

    async def aclose(self) -> None:
        """Release what the runtime owns (never the service's store)."""


class _RateRuntime(_Runtime):
    """One rate policy bound to the service's store: check, check_many, peek, forecast.

    Check runs the store's bound transform (:meth:`ScriptStore.bind` / :meth:`AsyncScriptStore.abind`)
    and CheckMany one ``eval_many``/``aeval_many`` batch; peek and forecast go through a limiter."""

    def __init__(self, policy: RatePolicy, store: Any, clock: Clock | None, outage: OutageLog) -> None:
        self.policy = policy
        self.outage = outage
        strategy = policy.strategy
        self.limit = int(strategy.limit_value)
        self.inline = bool(store.inline)
        self.store = store
        self._limiter: Any = (Limiter if self.inline else AsyncLimiter)(
            strategy, store=store, prefix=policy.prefix, clock=clock
        )
        self._kp = join_prefix(store.prefix, policy.prefix)
        self._transform = strategy.check_transform
        self._params = tuple(strategy.params)
        self._now: Callable[[], float] = clock.now_ms if clock is not None else (lambda: SERVER_TIME)
        self._fail_decision()
        if self.inline:
            self.check_reply = self._inline_checker(clock)  # type: ignore[method-assign,assignment]
        else:
            self.check_reply = self._async_check  # type: ignore[method-assign]
            self._run: Any = store.abind(self._transform, self._params)

    def _inline_checker(self, clock: Clock | None) -> Callable[[str, int], Reply]:
        """Check on an inline store: its bound call, unguarded (no ``pcall`` per decision; a script fault
        is converted in the ``except`` clause, which costs nothing until it runs), the constants held in
        the closure. ``tap`` and ``shadow`` are read per call: the service sets them, and a reload may
        change ``shadow``."""
        run = self.store.bind(self._transform, self._params, guarded=False)
        kp, outage, name = self._kp, self.outage, self._transform
        sha = load_manifest()[name].sha
        now_ms = clock.now_ms if clock is not None else None
        policy_name, kind = self.policy.name, self.telemetry_kind  # fixed for this runtime

        def check(key: str, cost: int) -> Reply:
            t0 = perf_counter_ns() if self.tap.active else 0
            try:
                r = run(kp + key, SERVER_TIME if now_ms is None else now_ms(), cost)
            except StoreError as exc:
                r = self._synthesize(exc)
            except Exception as exc:
                raise as_script_error(name, sha, exc) from None
            else:
                if outage.down:
                    outage.recovered()
            if self.shadow:
                return self._observe("check", key, cost, r, t0)
            if t0:  # _observe, inlined for the common case (no shadow): one frame fewer per decision
                self.tap.observe(policy_name, kind, "check", key, cost, r, t0, r is self._failed, False, "")
            return r  # type: ignore[no-any-return]

        return check

    async def _async_check(self, key: str, cost: int) -> Reply:
        t0 = perf_counter_ns() if self.tap.active else 0
        try:
            r = await self._run(self._kp + key, self._now(), cost)
        except StoreError as exc:
            r = self._synthesize(exc)
        else:
            if self.outage.down:
                self.outage.recovered()
        if t0 or self.shadow:
            return self._observe("check", key, cost, r, t0)
        return r  # type: ignore[no-any-return]

    async def check(self, key: str, cost: int) -> Decision:
        r = self.check_reply(key, cost)
        return _decision(r if self.inline else await r)

    async def check_many_replies(self, keys: Sequence[str], cost: int) -> list[Reply]:
        """Every key at one ``now`` in one store call (one write on Redis); input order kept."""
        if not keys:
            return []
        kp = self._kp
        full = [(kp + k,) for k in keys]
        args = (*self._params, cost)
        t0 = perf_counter_ns() if self.tap.active else 0
        try:
            if self.inline:
                rs = self.store.eval_many(self._transform, full, self._now(), args)
            else:
                rs = await self.store.aeval_many(self._transform, full, self._now(), args)
        except StoreError as exc:
            rs = [self._synthesize(exc, len(keys))] * len(keys)
        else:
            if self.outage.down:
                self.outage.recovered()
        if t0 or self.shadow:
            # each decision's share of the batch's duration: start times spaced so latency = total / n
            share = (perf_counter_ns() - t0) // len(keys) if t0 else 0
            now = perf_counter_ns()
            rs = [
                self._observe("check_many", k, cost, r, (now - share) if t0 else 0) for k, r in zip(keys, rs)
            ]
        return rs  # type: ignore[no-any-return]

    async def check_many(self, keys: Sequence[str], cost: int) -> list[Decision]:
        return [_decision(r) for r in await self.check_many_replies(keys, cost)]

    async def peek(self, key: str) -> Decision:
        t0 = perf_counter_ns() if self.tap.active else 0
        try:
            d: Decision = self._limiter.peek(key) if self.inline else await self._limiter.peek(key)
        except StoreError as exc:
            self._synthesize(exc)
            d = self._failed_decision
        else:
            if self.outage.down:
                self.outage.recovered()
        return self._observe_decision("peek", key, 0, d, t0) if t0 else d

    async def forecast(self, key: str, cost: int) -> Forecast:
        """A store outage propagates (:class:`StoreError`): there is no honest forecast to synthesize."""
        try:
            f: Forecast = (
                self._limiter.forecast(key, cost) if self.inline else await self._limiter.forecast(key, cost)
            )
        except StoreError as exc:
            self.outage.failed(exc, 0)
            raise
        if self.outage.down:
            self.outage.recovered()
        return f

    def forecast_now(self, key: str) -> Forecast | None:
        if not self.inline:
            return None
        f: Forecast = self._limiter.forecast(key, 1)
        return f


class _TwoTierRuntime(_Runtime):
    """A ``twoTier:`` policy: a :class:`TwoTierLimiter` whose L2 is the shared store (a private memory
    store when the service's store is in-process). Check and CheckMany (concurrent checks) only."""

    def __init__(self, policy: TwoTierPolicy, store: Any, clock: Clock | None, outage: OutageLog) -> None:
        self.policy = policy
        self.outage = outage
        self.limit = int(policy.strategy.limit_value)
        l2 = MemoryStore(clock=clock) if store.inline else store
        self._private: MemoryStore | None = l2 if l2 is not store else None
        self.limiter = TwoTierLimiter(
            policy.strategy,
            store=l2,
            mode=policy.mode,  # type: ignore[arg-type]
            batch=policy.batch,
            low_water=policy.low_water,
            window_coupled=policy.window_coupled,
            return_idle_after_ms=policy.return_idle_after_ms,
            prefix=policy.prefix,
            clock=clock,
        )
        self._fail_decision()

    async def check(self, key: str, cost: int) -> Decision:
        t0 = perf_counter_ns() if self.tap.active else 0
        d = await self._decide(self.limiter.check(key, cost))
        return self._observe_decision("check", key, cost, d, t0)

    async def check_many(self, keys: Sequence[str], cost: int) -> list[Decision]:
        return list(await asyncio.gather(*(self.check(k, cost) for k in keys)))

    async def aclose(self) -> None:
        await self.limiter.aclose()
        if self._private is not None:
            self._private.close()

    def private_stores(self) -> list[tuple[str, BoundedStore]]:
        own: list[tuple[str, BoundedStore]] = [("in-process tier (L1)", self.limiter.l1)]
        if self._private is not None:
            own.append(("private L2", self._private))
        return own


class _BudgetRuntime(_Runtime):
    """A ``tokenBudget:`` (per-process meters in a private memory store bounded by ``maxKeys``) or
    ``fleetBudget:`` (the shared store, keys under the prefix; a private store when the service's store is
    in-process). Debit only."""

    def __init__(self, policy: TokenBudgetPolicy, store: Any, clock: Clock | None, outage: OutageLog) -> None:
        self.policy = policy
        self.outage = outage
        fleet = isinstance(policy, FleetBudgetPolicy)
        shared = fleet and not store.inline
        own = None if shared else MemoryStore(clock=clock, max_keys=policy.max_keys)
        self._own = own
        prefix = policy.prefix if isinstance(policy, FleetBudgetPolicy) else ""
        self.meter = TokenBudget(
            policy.budget, policy.window_ms, store=store if own is None else own, prefix=prefix, clock=clock
        )
        self.limit = self.meter.budget
        self._fail_decision()

    telemetry_kind = "meter"

    @property
    def strategy_name(self) -> str:
        return str(self.policy.kind)

    async def debit(self, key: str, tokens: int) -> Decision:
        t0 = perf_counter_ns() if self.tap.active else 0
        d = await self._decide(self.meter.adebit(key, tokens))
        return self._observe_decision("debit", key, tokens, d, t0)

    async def aclose(self) -> None:
        if self._own is not None:
            self._own.close()

    def private_stores(self) -> list[tuple[str, BoundedStore]]:
        return [] if self._own is None else [("meter store", self._own)]


class _AdmitRuntime(_Runtime):
    """A ``concurrency:`` policy: a per-process adaptive guard (its state in a private memory store, the
    decisions in ``conc_acquire``/``conc_release``) and, when the policy has ``strategy``, a rate axis on
    the shared store. Admit follows spec 10.3: concurrency first (a denial holds nothing), then the rate
    axis at cost 1; a rate denial returns the slot unused (no RTT sample: the work never ran). A granted
    admit holds a lease in the service's :class:`LeaseTable`."""

    def __init__(
        self,
        policy: ConcurrencyPolicy,
        store: Any,
        clock: Clock | None,
        outage: OutageLog,
        leases: LeaseTable,
        node_id: str = "",
    ) -> None:
        self.policy = policy
        self.outage = outage
        self.leases = leases
        self.limit = policy.params.max_limit
        self._own = MemoryStore(clock=clock)
        self.guard = ConcurrencyGuard(policy.params, store=self._own, key="guard", clock=clock)
        self.rate: _RateRuntime | None = None
        if policy.strategy is not None:
            self.rate = _RateRuntime(
                RatePolicy(policy.name, policy.strategy, policy.prefix), store, clock, outage
            )
        #: the fleet share capping the local limit (-1: none) and the self-fence instant (-1: never)
        self.cap: float = -1
        self.fence_at: float = -1
        self._fail_decision()
        self.bid, self._prior_bid, self._bid_store = _bid_filters(policy, store, self._own)

    telemetry_kind = "admitter"

    @property
    def strategy_name(self) -> str:
        strategy = self.policy.strategy
        return str(strategy.kind) if strategy is not None else "concurrency"

    async def admit(self, key: str, cost: int, hold: int = 0, value: int = 1) -> Admitted:
        t0 = perf_counter_ns() if self.tap.active else 0
        adm = await self._admit(key, cost, hold, value)
        if t0:
            d = adm.decision
            r = (d.allowed, d.limit, d.remaining, d.reset_at, d.retry_after_ms)
            self._observe("admit", key, cost, r, t0, "policy" if adm.policy_denied else adm.binding_axis)
        return adm

    async def _admit(self, key: str, cost: int = 1, hold: int = 0, value: int = 1) -> Admitted:
        grant = self.guard.acquire(self.cap, self.fence_at)
        conc = grant.decision
        if not conc.allowed:
            return Admitted(conc, binding_axis="concurrency")
        if self.bid is not None:
            try:
                denied = await self._bid_denies(cost, value, hold)
            except BaseException:
                self.guard.release(grant, sample=False)
                raise
            if denied:  # spec 10.3 step 2: the slot goes back unused; rate and cost never consulted
                self.guard.release(grant, sample=False)
                return Admitted(policy_denial(conc), policy_denied=True)
        decision = conc
        if self.rate is not None:
            try:
                r = self.rate.check_reply(key, 1)
                if not self.rate.inline:
                    r = await r
            except BaseException:
                self.guard.release(grant, sample=False)
                raise
            decision = combine(conc, _decision(r))
            if not decision.allowed:
                self.guard.release(grant, sample=False)
                return Admitted(decision, binding_axis="rate")
        lease = self.leases.mint(self, grant)
        return Admitted(decision, lease.id, int(lease.deadline))

    async def _bid_denies(self, cost: int, value: int, hold: int) -> bool:
        """The joint-LP filter. A static filter runs on the private store (no I/O); the adaptive learner
        on the shared store, and while that store cannot answer the admit is priced with the prior duals
        (logged as an outage; the learner resumes when the store answers)."""
        bid = self.bid
        assert bid is not None
        if self._bid_store is None:
            return bid.check(cost, value, hold).denied
        try:
            if self._bid_store.inline:
                denied = bid.check(cost, value, hold).denied
            else:
                denied = (await bid.acheck(cost, value, hold)).denied
        except StoreError as exc:
            self.outage.failed(exc)
            assert self._prior_bid is not None
            return self._prior_bid.check(cost, value, hold).denied
        if self.outage.down:
            self.outage.recovered()
        return denied

    def guard_stats(self) -> dict[str, Any]:
        """The guard as monitoring shows it (spec 5.1 GuardSummary): name, limit (the effective one),
        inflight, share, l_global, nodes, fenced."""
        limit = self.guard.limit if self.cap < 0 else min(self.guard.limit, int(self.cap))
        return {
            "name": self.policy.name,
            "limit": limit,
            "inflight": self.guard.inflight,
            "share": float(self.cap) if self.cap >= 0 else float(self.guard.limit),
            "l_global": int(getattr(self, "l_global", self.guard.limit)),
            "nodes": int(getattr(self, "nodes", 1)),
            "fenced": 0 <= self.fence_at <= self._fence_clock(),
        }

    def _fence_clock(self) -> float:
        return self.guard.clock.now_ms()

    def release_lease(self, lease: Lease, dropped: bool) -> None:
        """Return a lease's slot to this guard; a no-op once the runtime is closed (a reload retired the
        policy: its guard is gone with it, the lease ids stay valid and idempotent)."""
        if not self._closed:
            self.guard.release(lease.grant, dropped)

    _closed = False

    async def aclose(self) -> None:
        self._closed = True
        self._own.close()

    def private_stores(self) -> list[tuple[str, BoundedStore]]:
        return [("concurrency guard", self._own)]


def _bid_filters(
    policy: ConcurrencyPolicy, store: Any, own: MemoryStore
) -> tuple[BidFilter | None, BidFilter | None, Any]:
    """``(filter, prior filter, shared store)`` of a ``jointLp:`` policy (all None without one). A
    workload is solved by ``lp_solve`` on the private store. Static duals price on the private store (no
    I/O); an adaptive learner keeps its state on the shared store under ``tk:jointlp:<policy>`` (outside
    every rate key), so every server of a fleet on one Redis or Postgres feeds and reads one learner; its
    prior duals also price on the private store while the shared store is down."""
    cfg = policy.joint_lp
    if cfg is None:
        return None, None, None
    if not cfg.adaptive:
        return BidFilter(cfg, store=own, key="jointlp", solve_store=own), None, None
    learner = BidFilter(
        cfg,
        store=store,
        key=join_prefix(getattr(store, "prefix", "")) + f"tk:jointlp:{policy.name}",
        solve_store=own,
    )
    prior = BidFilter(JointLp(duals=learner.duals), store=own, key="jointlp")
    return learner, prior, store


#: Stores that can coordinate a distributedConcurrency fleet.
COORDINATOR_STORES = ("redis", "postgres")


class _FleetAdmitRuntime(_AdmitRuntime):
    """A ``distributedConcurrency:`` policy: the local guard capped by this node's share of the fleet
    ceiling. Every ``heartbeat_ms`` the node reports its limit and in-flight count to the coordinator
    (``conc_heartbeat`` on the shared store) and adopts the share it is given. The coordinator lease is
    ``2 * heartbeat_ms``; under fail-closed the guard fences itself once its last successful report is
    within ``(lease - heartbeat) / 2`` of lapsing (``fence_at``, checked by ``conc_acquire``), and a
    failed report sets the share to 0; under local-only a failed report lifts the cap (local limit only).
    A node id another live process holds (a collision) gets share 0 and an error in the log.
    ``aclose`` stops the beats and leaves the coordinator so peers take the share at once.

    Every report carries ``seq`` (increasing per process); a reply older than the newest applied one is
    dropped (spec 9.3). With ``handoff`` the report also carries ``applied_gen`` (the last grant generation
    adopted), sampled with the in-flight count. With ``eager_handoff`` three triggers send an off-cycle
    report, at most one pending and never sooner than ``min_heartbeat_ms`` after the previous report:
    PULL (an admit denied by the share while the share is below the fair share ``floor(l_global /
    nodes)`` of the last answer), PUSH (a release brings the in-flight count to or below a share the last
    answer lowered) and ACK (a reply whose gen differs from the applied one was applied)."""

    def __init__(
        self,
        policy: DistributedConcurrencyPolicy,
        store: Any,
        clock: Clock | None,
        outage: OutageLog,
        leases: LeaseTable,
        node_id: str = "",
    ) -> None:
        super().__init__(policy, store, clock, outage, leases, node_id)
        kind = store_label(store)
        if kind not in COORDINATOR_STORES:
            raise ConfigError(
                f"config.limiters[{policy.name}].distributedConcurrency: needs a shared coordinator store — "
                f"run with --redis or --postgres (memory / dynamodb cannot coordinate concurrency; this "
                f"server runs on {kind})"
            )
        self.fleet = policy
        self.coordinator = Coordinator(
            store,
            policy.name,
            node_id,
            prefix=policy.coordinator_prefix,
            aggregate=policy.aggregate,
            handoff=policy.handoff,
            allocation=policy.allocation,
        )
        self.node_id = node_id
        self.lease_ms = 2 * policy.heartbeat_ms
        self.margin = (self.lease_ms - policy.heartbeat_ms) // 2
        self.fail_closed = policy.on_outage == "fail-closed"
        self.cap = 0 if self.fail_closed else -1
        self.share = self.l_global = self.nodes = 0
        self.collision = False
        self._task: asyncio.Task[None] | None = None
        self._clock = clock
        self._log_errors = ErrorLog()
        #: report sequence (spec 9.3): the last sent, the newest applied; replies older are dropped
        self.seq = 0
        self.applied_seq = 0
        self.dropped_replies = 0
        #: the last grant generation applied (acknowledged handoff; reported as applied_gen)
        self.applied_gen = 0
        self.eager = policy.eager_handoff
        self.min_beat_ms = policy.min_heartbeat_ms
        #: off-cycle beats sent, by trigger
        self.eager_beats = {"pull": 0, "push": 0, "ack": 0}
        self._last_sent: float = -1e18
        self._lowered = False
        self._pending: Any = None
        self._eager_task: asyncio.Task[None] | None = None
        #: the timer seam of the eager beats (spec 9.3 ``scheduler.setTimer``): ``(delay_s, callback) ->
        #: a handle with cancel()``; None = the running loop's ``call_later``. Tests install a manual one.
        self.set_timer: Callable[[float, Callable[[], None]], Any] | None = None

    def _now(self) -> float:
        return self._clock.now_ms() if self._clock is not None else time.time() * 1000

    async def beat(self) -> None:
        """One report to the coordinator (never raises: a failure applies the outage policy)."""
        self.seq += 1
        seq = self.seq
        sent = self._last_sent = self._now()
        handoff = self.fleet.handoff
        applied_gen = self.applied_gen if handoff else -1
        try:
            s = await self.coordinator.aheartbeat(
                self.guard.limit, self.guard.inflight, self.lease_ms, seq=seq, applied_gen=applied_gen
            )
        except StoreError as exc:
            if seq < self.applied_seq:
                return  # a newer report has been answered since: it stands
            self.applied_seq = seq
            self.cap = 0 if self.fail_closed else -1
            self._log_errors.report(
                f"beat:{self.policy.name}",
                f"policy {self.policy.name!r}: coordinator heartbeat failed ({loggable(exc)}); "
                + (
                    "share 0 until it answers (fail-closed)"
                    if self.fail_closed
                    else "local limit only (local-only)"
                ),
            )
            return
        if seq < self.applied_seq:
            self.dropped_replies += 1
            return
        self.applied_seq = seq
        self.collision = s.collision
        if s.collision:
            self.cap = 0
            self._log_errors.report(
                f"collision:{self.policy.name}",
                f"policy {self.policy.name!r}: node id {self.node_id!r} is held by another live server; this "
                "one admits nothing until that one leaves or lapses: give every server its own --node-id",
            )
            return
        if s.share < self.share:
            # PUSH is armed only while more is held than the lowered share allows
            self._lowered = self.guard.inflight > s.share
        elif s.share > self.share:
            self._lowered = False
        self.share, self.l_global, self.nodes = s.share, s.l_global, s.nodes
        self.cap = s.share
        if self.fail_closed:
            self.fence_at = sent + self.lease_ms - self.margin
        if handoff and s.gen >= 0 and s.gen != self.applied_gen:
            self.applied_gen = s.gen
            self._eager_beat("ack")

    def _eager_beat(self, trigger: str) -> None:
        """Schedule one off-cycle report (a no-op without eagerHandoff, before start, after close, or when
        one is pending), no sooner than ``min_heartbeat_ms`` after the previous report."""
        if not self.eager or self._task is None or self._pending is not None:
            return
        if self._eager_task is not None and not self._eager_task.done():
            return
        self.eager_beats[trigger] += 1
        delay = max(0.0, self._last_sent + self.min_beat_ms - self._now()) / 1000
        timer = self.set_timer or asyncio.get_running_loop().call_later
        self._pending = timer(delay, self._fire)

    def _fire(self) -> None:
        self._pending = None
        if self._task is not None:
            self._eager_task = asyncio.ensure_future(self.beat())

    async def _admit(self, key: str, cost: int = 1, hold: int = 0, value: int = 1) -> Admitted:
        adm = await super()._admit(key, cost, hold, value)
        if (
            self.eager
            and adm.binding_axis == "concurrency"
            and self.nodes > 0
            and 0 <= self.cap < self.l_global // self.nodes
            and adm.decision.limit == self.cap
        ):
            self._eager_beat("pull")
        return adm

    def release_lease(self, lease: Lease, dropped: bool) -> None:
        super().release_lease(lease, dropped)
        if self._lowered and self.guard.inflight <= self.share:
            self._lowered = False
            self._eager_beat("push")

    async def _loop(self) -> None:
        period = self.fleet.heartbeat_ms / 1000
        while True:
            await asyncio.sleep(period)
            await self.beat()

    async def astart(self) -> None:
        if self._task is None:
            await self.beat()
            self._task = asyncio.ensure_future(self._loop())

    async def aclose(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
            if self._eager_task is not None:
                self._eager_task.cancel()
                self._eager_task = None
            try:
                await asyncio.wait_for(self.coordinator.aleave(), 2.0)
            except (StoreError, asyncio.TimeoutError, OSError) as exc:
                log.warning("policy %r: could not leave the coordinator: %s", self.policy.name, loggable(exc))
        await super().aclose()


class _FederatedRuntime(_Runtime):
    """A ``federated:`` policy: a :class:`FederatedLimiter` leasing from the coordinator in the shared
    store (Redis or Postgres; memory and DynamoDB cannot federate), through the region's escrow when the
    service has a regional store. Check and CheckMany (concurrent checks), and ``reserve`` for the Fleet
    door. A coordinator outage is answered fail-closed (deny once the local credits, and with
    ``regional-only`` the regional escrow, are spent), whatever ``--fail`` says: a budget shared across
    regions cannot be spent blind."""

    def __init__(
        self,
        policy: FederatedPolicy,
        store: Any,
        clock: Clock | None,
        outage: OutageLog,
        regional: AsyncScriptStore | None = None,
    ) -> None:
        label = store_label(store)
        if store.inline or label in ("memory", "dynamodb"):
            raise ConfigError(
                f"config.limiters[{policy.name}].federated: needs a shared coordinator store — run with "
                "--redis or --postgres (memory / dynamodb cannot federate)"
            )
        self.policy = policy
        self.shadow = bool(getattr(policy, "shadow", False))
        self.outage = OutageLog("closed", logger=outage.log)
        self.limit = policy.budget
        region = policy.region or "default"
        self.coordinator = FedCoordinator(
            store,
            window_ms=policy.window_ms,
            budget=policy.budget,
            anchor=policy.anchor,
            prefix=policy.key_prefix(),
            budgets=policy.budgets,
            clock=clock,
        )
        escrow = None
        if regional is not None:
            escrow = RegionalEscrow(
                regional,
                region=region,
                window_ms=policy.window_ms,
                prefix=policy.escrow_prefix,
                namespace=policy.prefix,
                clock=clock,
            )
        elif policy.on_coordinator_outage == "regional-only":
            log.warning(
                "policy %r: onCoordinatorOutage regional-only without a regional store (--regional-store / "
                "TK_REGIONAL_STORE): there is no escrow to serve from, so a coordinator outage is answered "
                "fail-closed",
                policy.name,
            )
        self.limiter = FederatedLimiter(
            policy.strategy,
            self.coordinator,
            batch=policy.batch,
            region=region,
            clock=clock,
            escrow=escrow,
            escrow_batch=policy.escrow_batch,
            on_outage=policy.on_coordinator_outage,
            health_check_ms=policy.health_check_ms,
        )
        self._fail_decision()

    async def check(self, key: str, cost: int) -> Decision:
        t0 = perf_counter_ns() if self.tap.active else 0
        d = await self._decide(self.limiter.check(key, cost))
        return self._observe_decision("check", key, cost, d, t0)

    async def check_many(self, keys: Sequence[str], cost: int) -> list[Decision]:
        return list(await asyncio.gather(*(self.check(k, cost) for k in keys)))

    async def reserve(self, key: str, wants: int) -> Grant:
        """A Fleet lease: up to ``wants`` units of ``key``'s budget for the store's current window (the
        same coordinator key a Check of ``key`` leases from). A coordinator outage raises StoreError."""
        try:
            g: Grant = await self.coordinator.alease(key, wants)
        except StoreError as exc:
            self.outage.failed(exc, 0)
            raise
        if self.outage.down:
            self.outage.recovered()
        return g

    async def aclose(self) -> None:
        await self.limiter.aclose()

    def private_stores(self) -> list[tuple[str, BoundedStore]]:
        return [("in-process tier (local credits)", self.limiter.l1)]


class _FairRuntime(_Runtime):
    """A ``fairEscrow:`` policy: a :class:`FairEscrow` in a private in-process store (one instance; the
    request key is the tenant). Check only, called inline (no I/O)."""

    inline = True

    @property
    def strategy_name(self) -> str:
        return str(self.policy.kind)

    def __init__(self, policy: FairEscrowPolicy, store: Any, clock: Clock | None, outage: OutageLog) -> None:
        self.policy = policy
        self.shadow = bool(getattr(policy, "shadow", False))
        self.outage = outage
        self.limit = policy.limit
        self.escrow = FairEscrow(
            policy.limit,
            policy.window_ms,
            weights=policy.weights,
            max_tenants=policy.max_keys,
            idle_ms=policy.idle_ms,
            clock=clock,
        )
        self._fail_decision()

    def check_reply(self, key: str, cost: int) -> Reply:
        t0 = perf_counter_ns() if self.tap.active else 0
        d = self.escrow.check(key, cost)
        r = (d.allowed, d.limit, d.remaining, d.reset_at, d.retry_after_ms)
        return self._observe("check", key, cost, r, t0) if t0 or self.shadow else r

    async def check(self, key: str, cost: int) -> Decision:
        return _decision(self.check_reply(key, cost))

    async def aclose(self) -> None:
        self.escrow.close()

    def fair_stats(self) -> dict[str, Any] | None:
        return self.escrow.stats()

    def private_stores(self) -> list[tuple[str, BoundedStore]]:
        return [("fair escrow tenants", self.escrow.store)]


class _FederatedFairRuntime(_Runtime):
    """A ``federatedFairEscrow:`` policy: this region's :class:`FederatedFairEscrow` over the region pool in
    the shared Redis. Check only; a pool outage is answered per ``--fail``."""

    @property
    def strategy_name(self) -> str:
        return str(self.policy.kind)

    def __init__(
        self, policy: FederatedFairEscrowPolicy, store: Any, clock: Clock | None, outage: OutageLog
    ) -> None:
        if store_label(store) != "redis":
            raise ConfigError(
                f"config.limiters[{policy.name}].federatedFairEscrow: needs a shared region-fair-pool store — run "
                "with --redis (memory / postgres / dynamodb have no cross-region pool yet; use `fairEscrow:` for "
                "a single instance)"
            )
        self.policy = policy
        self.shadow = bool(getattr(policy, "shadow", False))
        self.outage = outage
        self.limit = policy.limit
        pool = RegionFairPool(
            store,
            limit=policy.limit,
            window_ms=policy.window_ms,
            key=policy.key,
            prefix=policy.prefix,
            clock=clock,
        )
        self.escrow = FederatedFairEscrow(
            pool,
            region=policy.region or "default",
            weights=policy.weights,
            max_tenants=policy.max_keys,
            idle_ms=policy.idle_ms,
            clock=clock,
        )
        self._fail_decision()

    async def check(self, key: str, cost: int) -> Decision:
        t0 = perf_counter_ns() if self.tap.active else 0
        d = await self._decide(self.escrow.check(key, cost))
        return self._observe_decision("check", key, cost, d, t0)

    async def aclose(self) -> None:
        self.escrow.close()

    def fair_stats(self) -> dict[str, Any] | None:
        return self.escrow.stats()

    def private_stores(self) -> list[tuple[str, BoundedStore]]:
        return [("fair escrow tenants", self.escrow.local.store)]


#: Policy class -> runtime class. Adding a policy kind adds one entry here (and its config module).
RUNTIMES: dict[type[Policy], type[Any]] = {
    RatePolicy: _RateRuntime,
    TwoTierPolicy: _TwoTierRuntime,
    TokenBudgetPolicy: _BudgetRuntime,
    FleetBudgetPolicy: _BudgetRuntime,
    ConcurrencyPolicy: _AdmitRuntime,
    DistributedConcurrencyPolicy: _FleetAdmitRuntime,
    FederatedPolicy: _FederatedRuntime,
    FairEscrowPolicy: _FairRuntime,
    FederatedFairEscrowPolicy: _FederatedFairRuntime,
}

#: Seconds between two sweeps of expired leases.
SWEEP_S = 1.0


def default_node_id() -> str:
    """``TK_NODE_ID``, else ``<hostname>#<pid>``."""
    return os.environ.get("TK_NODE_ID") or f"{socket.gethostname()}#{os.getpid()}"


def _discard(runtimes: Any) -> None:
    """Free what never-started runtimes hold synchronously: their private in-process stores (an
    admitter's guard store, a two-tier or federated L1, a fair escrow's tenants)."""
    for rt in runtimes:
        for _, own in rt.private_stores():
            close = getattr(own, "close", None)
            if close is not None:
                close()


def _fingerprint(policy: Policy) -> tuple[object, ...]:
    """What makes two policies the same policy: kind, parameters and store state (a reload keeps the
    runtime of a policy whose fingerprint did not change, in-process state included)."""
    return (type(policy), policy.describe(), policy.state())


def _layout(policy: Policy) -> tuple[str, object] | None:
    """``(prefix, layout)`` of the state a policy keeps in the shared store, where a different layout
    under the same prefix would be misread: the strategy for rate policies, the window for fleet
    budgets. None for a policy without shared state."""
    state = policy.state()
    if state is None:
        return None
    strategy = getattr(policy, "strategy", None)
    if strategy is not None:
        return state[0], strategy.kind
    return state[0], ("budget", getattr(policy, "window_ms", None))


@dataclass(frozen=True)
class ReloadReport:
    """What a reload changed, by policy name (``kept``: unchanged, runtime and in-process state kept)."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    kept: tuple[str, ...]
    retired: tuple[Any, ...] = field(default=(), repr=False)
    built: tuple[Any, ...] = field(default=(), repr=False)

    def describe(self) -> str:
        parts = [
            f"{what}: {', '.join(names)}"
            for what, names in (("added", self.added), ("removed", self.removed), ("changed", self.changed))
            if names
        ]
        parts.append(f"{len(self.kept)} unchanged")
        return "; ".join(parts)


def store_label(store: Any) -> str:
    """A short name for ``store`` in messages: ``memory``, ``redis``, ``postgres``, ``dynamodb``, ..."""
    name = type(store).__name__
    for affix in ("Pipelined", "Async"):
        name = name.removeprefix(affix)
    return name.removesuffix("Store").lower() or type(store).__name__


def _open_store(store: Any, clock: Clock | None) -> tuple[AsyncScriptStore, str, bool]:
    """(store for the runtimes, display name, owned) from None, a URL (through the store factory) or a
    store object (typed by the protocol: any :class:`~throttlekit.stores.AsyncScriptStore`)."""
    if store is None or store == "memory":
        store = "memory://"
    if isinstance(store, str):
        kind = store_kind(store)
        return open_async(store, clock=clock), kind.name, True
    if isinstance(store, AsyncScriptStore):
        return store, store_label(store), False
    if isinstance(store, ScriptStore):
        raise ConfigError(
            f"the server needs an async script store (or a URL), not the synchronous {type(store).__name__}"
        )
    raise ConfigError(
        f"unsupported store {type(store).__name__}: expected an async script store (memory, Redis, "
        "Postgres, DynamoDB, ...) or a URL"
    )


def _open_regional(store: Any, clock: Clock | None) -> tuple[AsyncScriptStore | None, bool]:
    """(the regional store, owned) for the federated policies' escrows: None, a URL through the store
    factory, or an async store object. Redis or Postgres only: an escrow is shared by the instances of a
    region, so it cannot live in one process's memory; DynamoDB holds no federation state (as for the
    coordinator)."""
    if store is None:
        return None, False
    if isinstance(store, str):
        name, opened, owned = store_kind(store).name, None, True
    elif isinstance(store, AsyncScriptStore):
        name, opened, owned = store_label(store), store, False
    else:
        raise ConfigError(
            f"regional store: expected a redis:// or postgresql:// URL or an async script store, got "
            f"{type(store).__name__}"
        )
    if name in ("memory", "dynamodb"):
        raise ConfigError(
            field="--regional-store",
            value=store if isinstance(store, str) else name,
            problem=f"a regional escrow cannot live in {name} (memory is one process's: the instances of a "
            "region share the escrow; dynamodb holds no federation state)",
            allowed="a redis://, rediss://, unix:// or postgresql:// URL shared by the region's instances",
        )
    if opened is None:
        opened = open_async(store, clock=clock)
    return opened, owned


def redis_store(url: str, prefix: str = "") -> AsyncScriptStore:
    """The server's Redis store for a ``redis://``, ``rediss://`` or ``unix://`` URL, from the store
    factory: one pipelined connection (hiredis), tuned to fail fast so a decision never hangs on a dead
    Redis (connect timeout 0.5 s, reply and handshake timeout 1 s; URL options ``socket_connect_timeout``
    and ``socket_timeout``). A non-empty ``prefix`` wins over the URL's ``?prefix=``."""
    return open_async(url, prefix=prefix or None)


class RateLimiterService:
    """Policies by name over one store, with a fail mode. Build it with
    :func:`create_rate_limiter_service_from_config` or from a loaded :class:`PolicyConfig`.

    ``store``: None or ``"memory://"`` (in-process), a ``redis://`` URL, or any async script store
    (:class:`~throttlekit.stores.AsyncScriptStore`: memory, Redis, Postgres, DynamoDB). ``fail``: ``"open"`` admits, ``"closed"`` denies while the store is down.
    ``clock`` fixes ``now`` (tests use a :class:`~throttlekit.ManualClock`); by default the store's clock
    decides (Redis ``TIME``: no skew across a fleet). Admitter policies: ``lease_ttl_ms`` (a lease not
    renewed for this long is reclaimed), ``sweep_s`` (seconds between sweeps), ``node_id`` (this server in
    a distributedConcurrency fleet; default ``TK_NODE_ID``, else ``<hostname>#<pid>``). ``region`` names
    this instance's region for ``federated:`` and ``federatedFairEscrow:`` policies that do not name their
    own (``--region``). ``regional_store`` (a redis:// or postgresql:// URL, or an async store): the
    region's store holding the federated policies' regional escrows (``--regional-store``; None: each
    instance leases from the coordinator directly). ``close_store``: whether :meth:`aclose` closes the store (default: only a store
    the service opened from None or a URL).
    """

    def __init__(
        self,
        config: PolicyConfig,
        *,
        store: Any = None,
        fail: FailMode = "open",
        clock: Clock | None = None,
        close_store: bool | None = None,
        lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS,
        node_id: str | None = None,
        sweep_s: float = SWEEP_S,
        region: str = "default",
        regional_store: Any = None,
    ) -> None:
        if fail not in ("open", "closed"):
            raise ConfigError(f"fail must be 'open' or 'closed', got {fail!r}")
        self.region = v_name("region", region)
        self.config = config
        self.fail: FailMode = fail
        self.clock = clock
        self.store, self.store_name, owned = _open_store(store, clock)
        self._owns_store = owned if close_store is None else close_store
        #: the region's store holding the federated policies' regional escrows (None: no escrow)
        self.regional_store, self._owns_regional = _open_regional(regional_store, clock)
        self.outage = OutageLog(fail)
        self.errors = ErrorLog()
        #: Decision observers register here (see ``_telemetry.py``); clock: the service's, else wall time.
        self.tap = DecisionTap(clock.now_ms if clock is not None else None)
        self.leases = LeaseTable(lease_ttl_ms, clock)
        self.sweep_s = sweep_s
        self.node_id = node_id or default_node_id()
        self.policies: dict[str, Any] = {}
        try:
            for name, policy in config.policies.items():
                self.policies[name] = self._build(name, policy)
        except BaseException:
            _discard(self.policies.values())
            raise
        self.names = tuple(self.policies)
        self._closed = False
        self._started = False
        self._sweeper: asyncio.Task[None] | None = None
        #: Reloads by result (``ok``, ``error``), for metrics.
        self.reloads = {"ok": 0, "error": 0}

    def _build(self, name: str, policy: Policy) -> Any:
        """The runtime serving ``policy`` on this service's store, on the service's tap."""
        runtime = RUNTIMES.get(type(policy))
        if runtime is None:
            raise ConfigError(f"policy {name!r}: kind {policy.kind!r} is not served")
        if isinstance(policy, (FederatedPolicy, FederatedFairEscrowPolicy)) and policy.region is None:
            policy = dataclasses.replace(policy, region=self.region)
        if isinstance(policy, ConcurrencyPolicy):
            rt = runtime(policy, self.store, self.clock, self.outage, self.leases, self.node_id)
        elif isinstance(policy, FederatedPolicy):
            rt = runtime(policy, self.store, self.clock, self.outage, self.regional_store)
        else:
            rt = runtime(policy, self.store, self.clock, self.outage)
        rt.tap = self.tap
        rt.shadow = name in self.config.shadow
        return rt

    def reload(self, config: PolicyConfig) -> ReloadReport:
        """Swap in ``config``'s policies in one step (no await: no request sees a mix of the two).

        Every new or changed policy is built first; any error (:class:`ConfigError`) leaves the current
        policies serving, untouched. A policy whose fingerprint is unchanged keeps its runtime (its
        in-process state: a two-tier L1, a meter store, a concurrency guard). Counters in the store survive
        a reload that keeps a policy's prefix and state layout (e.g. a new limit); a reload that would put
        a different layout (another strategy) under a prefix still holding the old one is refused, naming
        the policy. The report's ``retired`` runtimes are no longer reachable: close them (``aclose``) once
        requests in flight are done; its ``built`` ones start with :meth:`astart_built`."""
        try:
            return self._reload(config)
        except Exception:
            self.reloads["error"] += 1
            raise

    def _reload(self, config: PolicyConfig) -> ReloadReport:
        old = self.policies
        layouts: dict[str, tuple[str, object]] = {}
        for rt in old.values():
            lay = _layout(rt.policy)
            if lay is not None:
                layouts[lay[0]] = (rt.policy.name, lay[1])
        for name, policy in config.policies.items():
            lay = _layout(policy)
            if lay is None or lay[0] not in layouts or layouts[lay[0]][1] == lay[1]:
                continue
            owner, before = layouts[lay[0]]
            raise ConfigError(
                f"policy {name!r} would keep {lay[1]} state under store-key prefix {lay[0]!r}, where policy "
                f"{owner!r} keeps {before} state: its existing keys would be misread; give it a new prefix "
                "(the old keys expire on their own) or keep the layout",
                field=f"limiters.{name}.prefix",
                value=lay[0],
            )
        previous, self.config = self.config, config  # _build reads the new shadow set
        new: dict[str, Any] = {}
        built: list[Any] = []
        try:
            for name, policy in config.policies.items():
                prev = old.get(name)
                if prev is not None and _fingerprint(prev.policy) == _fingerprint(policy):
                    new[name] = prev
                    continue
                rt = self._build(name, policy)
                built.append(rt)
                new[name] = rt
        except BaseException:
            self.config = previous
            _discard(built)
            raise
        for name, rt in new.items():
            rt.shadow = name in config.shadow
        self.policies, self.names = new, tuple(new)
        self.reloads["ok"] += 1
        return ReloadReport(
            added=tuple(n for n in new if n not in old),
            removed=tuple(n for n in old if n not in new),
            changed=tuple(n for n in new if n in old and new[n] is not old[n]),
            kept=tuple(n for n in new if new[n] is old.get(n)),
            retired=tuple(rt for n, rt in old.items() if new.get(n) is not rt),
            built=tuple(built),
        )

    async def astart_built(self, report: ReloadReport) -> None:
        """Start the background work of the admitters a reload built (when the service is started)."""
        if not self._started:
            return
        admitters = [rt for rt in report.built if isinstance(rt, _AdmitRuntime)]
        if admitters and self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep_loop(self.sweep_s))
        for rt in admitters:
            await rt.astart()

    def federated(self) -> dict[str, Any]:
        """The runtimes of the ``federated:`` policies (the Fleet door's lease sources), by name."""
        return {n: rt for n, rt in self.policies.items() if isinstance(rt, _FederatedRuntime)}

    def policy(self, name: str) -> Any:
        """The runtime of ``name``; raises :class:`UnknownPolicyError`."""
        rt = self.policies.get(name)
        if rt is None:
            raise UnknownPolicyError(name, self.names)
        return rt

    @staticmethod
    def unsupported(name: str, op: str) -> NotSupportedError:
        return _unsupported(name, op)

    async def check(self, policy: str, key: str, cost: int = 1) -> Decision:
        return await self.policy(policy).check(key, cost)  # type: ignore[no-any-return]

    async def check_many(self, policy: str, keys: Sequence[str], cost: int = 1) -> list[Decision]:
        return await self.policy(policy).check_many(keys, cost)  # type: ignore[no-any-return]

    async def peek(self, policy: str, key: str) -> Decision:
        return await self.policy(policy).peek(key)  # type: ignore[no-any-return]

    async def forecast(self, policy: str, key: str, cost: int = 1) -> Forecast:
        return await self.policy(policy).forecast(key, cost)  # type: ignore[no-any-return]

    async def debit(self, policy: str, key: str, tokens: int = 1) -> Decision:
        return await self.policy(policy).debit(key, tokens)  # type: ignore[no-any-return]

    async def admit(self, policy: str, key: str, cost: int = 1, hold: int = 0, value: int = 1) -> Admitted:
        """Admit against an admitter policy; a granted admit holds a lease (release it)."""
        return await self.policy(policy).admit(key, cost, hold, value)  # type: ignore[no-any-return]

    def release(self, lease_id: str, dropped: bool = False) -> bool:
        """Return a lease's slot (``dropped``: the work failed; the adaptive limit contracts). Idempotent:
        an unknown, released or reclaimed id is a no-op (False)."""
        lease = self.leases.pop(lease_id)
        if lease is None:
            return False
        lease.owner.release_lease(lease, dropped)
        return True

    def heartbeat(self, lease_ids: Sequence[str]) -> tuple[list[str], list[str], int]:
        """Renew the listed leases: ``(live_ids, reclaimed_ids, next_deadline)``."""
        live, gone, deadline = self.leases.renew(lease_ids)
        return live, gone, int(deadline)

    def sweep(self) -> int:
        """Reclaim every lease whose deadline passed, as dropped (a crashed holder); returns how many.
        Never raises: a guard that fails is logged once per burst and the sweep goes on."""
        expired = self.leases.expired()
        for lease in expired:
            try:
                lease.owner.release_lease(lease, True)
            except Exception as exc:
                self.errors.report(
                    f"sweep:{type(exc).__name__}",
                    f"lease sweep: a guard failed to take a slot back: {loggable(exc)}",
                )
        return len(expired)

    async def _sweep_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.sweep()

    async def astart(self) -> None:
        """Start background work once serving: the lease sweep (when any admitter is configured) and the
        fleet heartbeats. Idempotent; :meth:`aclose` stops it."""
        if self._started:
            return
        self._started = True
        admitters = [rt for rt in self.policies.values() if isinstance(rt, _AdmitRuntime)]
        if admitters:
            self._sweeper = asyncio.ensure_future(self._sweep_loop(self.sweep_s))
        for rt in admitters:
            await rt.astart()

    def describe(self) -> list[str]:
        return self.config.describe()

    def bounded_stores(self) -> list[tuple[str, BoundedStore]]:
        """Every store of this service that evicts at a key bound, named for the log: the service's
        store (memory) and the policies' private in-process stores."""
        found: list[tuple[str, BoundedStore]] = []
        if isinstance(self.store, BoundedStore):
            found.append((f"{self.store_name} store", self.store))
        for name, rt in self.policies.items():
            found.extend((f"policy {name!r} {what}", s) for what, s in rt.private_stores())
        return found

    async def aclose(self) -> None:
        """Close the store if the service opened it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for rt in self.policies.values():
            await rt.aclose()
        if self._owns_store:
            await self.store.aclose()
        if self.regional_store is not None and self._owns_regional:
            await self.regional_store.aclose()


def create_rate_limiter_service_from_config(
    text: str,
    *,
    store: Any = None,
    fail: FailMode = "open",
    clock: Clock | None = None,
    source: str = "<config>",
    lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS,
    node_id: str | None = None,
) -> RateLimiterService:
    """Embedding API: a :class:`RateLimiterService` from policy-file text (YAML or JSON).

    Raises :class:`~throttlekit.config.PolicyConfigError` listing every problem of the text.
    """
    return RateLimiterService(
        load_config(text, source=source),
        store=store,
        fail=fail,
        clock=clock,
        lease_ttl_ms=lease_ttl_ms,
        node_id=node_id,
    )
