"""Weighted fair escrow: one per-window budget split across tenants by weight (``docs/federation.md``,
"Fair escrow").

:class:`FairEscrow` (one instance): the tenants that asked this window share the budget L max-min fairly
by weight (``wfe_check``): equal heavy demand splits by weight, an idle tenant takes no share (the others
borrow it), usage never exceeds L. :class:`FederatedFairEscrow` (one per region): the same split of the
region's slice, which a :class:`RegionFairPool` in Redis grows on demand (``rfp_grant``): each region
holds at least its weighted share of L when it needs it, and the slices of all regions never sum above L,
so N regions admit L in total, never N x L.

Every number comes out of Lua; Python routes, and serializes one region's checks (a slice is asked for
between two local decisions).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import _validate as v
from ._clock import SERVER_TIME, Clock, SystemClock
from ._errors import ConfigError
from ._loader import DECISION_REPLY, load_manifest, reply_index
from ._types import Decision, make_decision
from .stores import MemoryStore, join_prefix
from .stores.base import Reply

__all__ = ["MAX_ROUNDS", "FairEscrow", "FairReply", "FederatedFairEscrow", "RegionFairPool", "fair_params"]

#: Region-pool requests one federated check makes at most before it answers.
MAX_ROUNDS = 64
#: The key of a fair escrow's tenant table in its private store.
_POOL = "wfe"
#: Tenants :meth:`FairEscrow.stats` lists by default (the Cost Room shows 12, the Fairness view 10).
STATS_TOP = 64
_STATS_REPLY = reply_index(
    load_manifest()["wfe_stats"], ("window_start", "budget", "evicted", "used", "tenant_count", "tenants")
)


def _num(text: Any) -> float | int:
    """A '%.17g' reply as a number (an int when whole)."""
    x = float(text)
    return int(x) if x.is_integer() else x


def fair_params(
    limit: Any, window: Any, weights: Any, max_tenants: Any
) -> tuple[int, float, dict[str, float], int]:
    """``(L, window_ms, weights, max_tenants)`` checked, or one ConfigError listing every bad field:
    ``limit`` >= 1 (floored to whole units), a window, positive weights, ``maxKeys`` >= 1."""
    c = v.Checks("fairEscrow")
    lim = c(v.number, "limit", limit, low=1, low_open=False)
    w = c(v.duration, "windowMs", window, strings=False)
    ws: dict[str, float] = {}
    if not isinstance(weights, Mapping):
        c.error("weights", "must be a mapping of tenant to weight", weights, "{team-a: 3, team-b: 1}")
    else:
        for tenant, x in weights.items():
            got = c(v.number, f"weights[{tenant}]", x)
            if got is not None:
                ws[str(tenant)] = got
    n = c(v.integer, "maxKeys", max_tenants, 1, 10_000_000)
    c.done()
    assert lim is not None and w is not None and n is not None
    return int(lim), w, ws, n


@dataclass(frozen=True, slots=True)
class FairReply:
    """One fair-escrow decision and what a region pool needs: the budget at which it would have fit
    (``need``), the active tenants' weight (``weight_sum``) and this window's budget."""

    decision: Decision
    need: int
    weight_sum: float
    budget: int


_WFE = load_manifest()["wfe_check"]
_NEED, _WSUM, _BUDGET = reply_index(_WFE, ("need", "weight_sum", "budget"))
_A, _LIM, _REM, _RST, _RTY = reply_index(_WFE, DECISION_REPLY)
#: wfe_check's per-policy ARGV (bound once), then its per-request ARGV (each call), by manifest name
_CONSTANTS = ("window_ms", "limit", "max_tenants", "idle_ms")
_PER_CALL = ("tenant", "weight", "cost", "budget")
assert _WFE.argv == ("now_ms", *_CONSTANTS, *_PER_CALL), _WFE.argv


def _reply(r: Any) -> FairReply:
    """A ``wfe_check`` reply, read by the manifest's reply names."""
    return FairReply(
        make_decision(r[_A] == 1, r[_LIM], r[_REM], r[_RST], r[_RTY]),
        int(r[_NEED]),
        float(r[_WSUM]),
        int(r[_BUDGET]),
    )


def wfe_args(
    window_ms: float, limit: float, max_tenants: int, idle_ms: float, tenant: str, weight: float, cost: float,
    budget: int,
) -> tuple[Any, ...]:  # fmt: skip
    """``wfe_check``'s ARGV after ``now_ms``, packed in the manifest's order (for ``eval``)."""
    values = {
        "window_ms": window_ms,
        "limit": limit,
        "max_tenants": max_tenants,
        "idle_ms": idle_ms,
        "tenant": tenant,
        "weight": weight,
        "cost": cost,
        "budget": budget,
    }
    return tuple(values[a] for a in _WFE.argv[1:])


class FairEscrow:
    """A weighted fair split of ``limit`` units per ``window`` (ms, epoch-aligned) across tenants, in one
    process. ``weights`` maps a tenant to its weight (default 1; a call may override it); at most
    ``max_tenants`` tenants are tracked per window (the earliest joined is evicted, its usage still
    counts). ``idle_ms`` (default None: never) takes a tenant silent for longer out of the split until it
    asks again (it keeps what it used; the others share its unused part). State lives in a private
    in-process store; ``clock`` fixes time (tests)."""

    def __init__(
        self,
        limit: float,
        window_ms: float,
        *,
        weights: Mapping[str, float] | None = None,
        max_tenants: int = 100_000,
        idle_ms: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.limit, self.window_ms, self.weights, self.max_tenants = fair_params(
            limit, window_ms, dict(weights or {}), max_tenants
        )
        self.idle_ms = 0 if idle_ms is None else v.duration("idleMs", idle_ms, strings=False)
        self.clock: Clock = clock or SystemClock()
        self.store = MemoryStore(clock=self.clock, max_keys=16)
        # the store's fast path, as a Limiter's: the policy's constants bound once; a call passes the
        # request's values (tenant, weight, cost, budget) and the store's clock decides ``now``
        constants = {"window_ms": self.window_ms, "limit": self.limit, "max_tenants": self.max_tenants,
                     "idle_ms": self.idle_ms}  # fmt: skip
        self._run: Callable[..., Reply] = self.store.bind(
            "wfe_check", tuple(constants[a] for a in _CONSTANTS)
        )

    def weight_of(self, tenant: str) -> float:
        return self.weights.get(tenant, 1.0)

    def decide(
        self, tenant: str, cost: float = 1, *, weight: float | None = None, budget: int = -1
    ) -> FairReply:
        """One decision with its pool fields (``budget`` -1: the whole limit)."""
        v.cost(cost)
        if not isinstance(tenant, str) or not tenant:
            raise ConfigError(field="tenant", value=tenant, problem="must be a non-empty string")
        w = self.weights.get(tenant, 1.0) if weight is None else v.number("weight", weight)
        return _reply(self._run(_POOL, SERVER_TIME, tenant, w, cost, budget))

    def check(self, tenant: str, cost: float = 1, *, weight: float | None = None) -> Decision:
        """Admit ``cost`` units for ``tenant`` if they fit its fair ceiling this window."""
        return self.decide(tenant, cost, weight=weight).decision

    def stats(self, top: int = STATS_TOP, *, unset_budget: int | None = None) -> dict[str, Any]:
        """This window as monitoring shows it (``wfe_stats``; reads, never decides): ``windowStart``,
        ``limit``, ``effectiveLimit`` (this window's budget; ``unset_budget``, default the limit, before
        one is stored), ``pool`` (units left), ``totalUsed``, ``tenantCount`` and the ``top`` most used
        ``tenants`` as ``{tenant, weight, used, lastAskedAt}``."""
        now = self.clock.now_ms()
        r = self.store.eval("wfe_stats", (_POOL,), now, (self.window_ms, self.limit, top))
        ws, budget, _evicted, used, count, rows = (r[i] for i in _STATS_REPLY)
        effective = (
            int(budget) if budget >= 0 else (int(self.limit) if unset_budget is None else unset_budget)
        )
        return {
            "windowStart": int(ws),
            "limit": int(self.limit),
            "effectiveLimit": effective,
            "pool": max(0, effective - int(used)),
            "totalUsed": int(used),
            "tenantCount": int(count),
            "tenants": [
                {"tenant": t, "weight": _num(w), "used": _num(u), "lastAskedAt": int(at)}
                for t, w, u, at in rows
            ],
        }

    def close(self) -> None:
        self.store.close()


class RegionFairPool:
    """The region pool of a federated fair escrow: a hash in a shared (Redis) store at
    ``<store prefix>:<prefix>:<key>`` holding each region's weight and slice of ``limit`` for the window
    (``rfp_grant``). ``clock`` fixes time (tests); by default the store's clock decides."""

    def __init__(
        self,
        store: Any,
        *,
        limit: int,
        window_ms: float,
        key: str,
        prefix: str = "tk:rfp",
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.limit = v.integer("limit", limit, 1, v.MAX_SAFE_INTEGER)
        self.window_ms = v.duration("windowMs", window_ms, strings=False)
        self.key = join_prefix(getattr(store, "prefix", ""), prefix) + key
        self.clock = clock

    def _now(self) -> float:
        return SERVER_TIME if self.clock is None else self.clock.now_ms()

    def _args(self, region: str, weight: float, want: float, window_start: int | None) -> Any:
        return (
            self.window_ms,
            self.limit,
            region,
            weight,
            want,
            -1 if window_start is None else window_start,
        )

    def grant(
        self, region: str, weight: float, want: float, window_start: int | None = None
    ) -> tuple[int, int]:
        """``(slice, window start)``: ``region``'s slice after asking for ``want`` in total (only for the
        window starting at ``window_start`` when given: another window grants nothing)."""
        r = self.store.eval(
            "rfp_grant", (self.key,), self._now(), self._args(region, weight, want, window_start)
        )
        return int(r[0]), int(r[1])

    async def agrant(
        self, region: str, weight: float, want: float, window_start: int | None = None
    ) -> tuple[int, int]:
        """:meth:`grant` on an asyncio store."""
        r = await self.store.aeval(
            "rfp_grant", (self.key,), self._now(), self._args(region, weight, want, window_start)
        )
        return int(r[0]), int(r[1])


class FederatedFairEscrow:
    """One region's weighted fair escrow over a :class:`RegionFairPool`: the tenants of this region split
    the region's slice as :class:`FairEscrow` splits L; when a request does not fit, the region asks the
    pool for the slice it would need (at most :data:`MAX_ROUNDS` times, while the slice grows). A region's
    checks are serialized. Run one per region (two instances of one region would each spend its slice)."""

    def __init__(
        self,
        pool: RegionFairPool,
        *,
        region: str,
        weights: Mapping[str, float] | None = None,
        max_tenants: int = 100_000,
        idle_ms: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.pool = pool
        self.region = v.name("region", region)
        self.local = FairEscrow(
            pool.limit, pool.window_ms, weights=weights, max_tenants=max_tenants, idle_ms=idle_ms, clock=clock
        )
        self._lock = asyncio.Lock()
        #: region-pool round trips made, for tests and benchmarks
        self.pool_calls = 0

    async def decide(self, tenant: str, cost: float = 1, *, weight: float | None = None) -> FairReply:
        async with self._lock:
            budget = 0
            r = self.local.decide(tenant, cost, weight=weight, budget=budget)
            for _ in range(MAX_ROUNDS):
                if r.decision.allowed or r.budget >= self.pool.limit:
                    return r
                start = r.decision.reset_at - int(self.pool.window_ms)
                granted, _ = await self.pool.agrant(self.region, r.weight_sum, r.need, start)
                self.pool_calls += 1
                if granted <= r.budget:
                    return r
                r = self.local.decide(tenant, cost, weight=weight, budget=granted)
            return r

    async def check(self, tenant: str, cost: float = 1, *, weight: float | None = None) -> Decision:
        """Admit ``cost`` units for ``tenant`` if they fit its fair ceiling of the region's slice."""
        return (await self.decide(tenant, cost, weight=weight)).decision

    def stats(self, top: int = STATS_TOP) -> dict[str, Any]:
        """:meth:`FairEscrow.stats` of this region's tenants; ``effectiveLimit`` is the region's granted
        slice (0 before the pool granted one this window)."""
        return self.local.stats(top, unset_budget=0)

    def close(self) -> None:
        self.local.close()
