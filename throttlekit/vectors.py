"""Replay golden-vector suites against a store: the conformance runner behind ``tk lua verify``.

Format (ThrottleKit's ``golden-vectors.json``, extended compatibly):

* ``rateLimit``: ``{strategy: {kind, options}, key, ops: [{now, cost, expect}]}``; an op may carry
  ``"op": "peek"`` (expect a decision) or ``"op": "forecast"`` (expect ``spendableNow``,
  ``nextReplenishAt``, ``fullAt``) or ``"op": "reset"`` (forget the key; no ``expect``); the default
  op is a check.
* ``tokenBudget``: ``{options: {budget, windowMs}, ops: [{now, tokens, expect}]}``; ops may also be
  ``{op: remaining, now, expect: {remaining}}`` or ``{op: reset}``.
* ``lease``: ``{limit, ttlMs, windowCoupled, events: [{op: grant|spend|reset, ...}]}``.
* ``leakyBucket``: ``{options: {ratePerSec, maxQueueMs}, ops: [{now, cost, expect: {accepted, delayMs}}]}``.
* ``twoTierLease`` (the two-tier leased L1): ``{limit, ttlMs, windowCoupled, lowWater, events: [...]}``
  with ``{op: grant, now, capacity, expiresAt, dropIfEnded, expect: {applied}}`` and
  ``{op: spend, now, cost, discard, expect: {needsRefresh, refill, decision}}``.
* ``denyCache`` (the two-tier cached-deny L1): ``ops: [{op: put, now, limit, resetAt, retryAfterMs,
  expect: {until}} | {op: lookup, now, expect: {hit, decision}}]``.
* ``coordinator`` (federation): ``{windowMs, anchor, budget, budgets, ops: [...]}`` with
  ``{op: lease, now, key, tokens, has, cost, forExpiresAt, expect: {granted, expiresAt, ttlMs, budgetLeft,
  decision}}`` and ``{op: reconcile, now, key, leftover, windowStart, reconciler, expect: {credited,
  budgetLeft, applied}}``; ``key`` defaults to ``"k"``, ``budgets`` maps a key to its own budget.
* ``fairEscrow`` (weighted fair escrow): ``{limit, windowMs, maxTenants, idleMs, ops: [{now, tenant, weight, cost,
  budget, expect: {decision, need, weightSum, budget}}]}`` (``budget`` -1 or absent: the whole limit); an op
  ``{op: stats, now, top, expect: {windowStart, budget, evicted, used, tenantCount, tenants}}`` reads the
  window through ``wfe_stats`` (``tenants``: ``[tenant, weight, used, lastAskedAt]``).
* ``regionalEscrow`` (federation's L2, spec 7.2): ``{windowMs, region, ops: [{op: lease, now, key, tokens,
  has, cost, limit, expect: {granted, balance, expiresAt, decision}} | {op: refill, now, key, granted,
  windowStart, take, has, cost, limit, expect: {taken, balance, expiresAt, applied, decision}} | {op:
  release, now, key, windowStart, expect: {released, applied}}]}``; ``key`` defaults to ``"k"``.
* ``regionPool`` (the federated fair escrow's region pool): ``{limit, windowMs, ops: [{now, region, weight,
  want, windowStart, expect: {granted, windowStart}}]}``.

* ``concurrency`` (the adaptive guard): ``{options: {minLimit, maxLimit, initialLimit, algorithm,
  rttWindow, smoothing, tolerance, backoffRatio, recalibration}, ops: [{op: acquire, now, cap?, fenceAt?, expect:
  {slot, allowed, limit, remaining, resetAt, retryAfterMs}} | {op: release, now, of: <index of the
  acquire op>, dropped?, sample?, expect: {limit, inflight, rttNoload, lastRtt}}]}``.
* ``unifiedFused`` (spec 10.4): ``{rate: {limit, periodMs, burst}, cost: {capacity, refillPerSec}, ops:
  [{now, cost, expect: {<combined decision>, rate: {<decision>}, cost: {<decision>}}}]}``.
* ``concurrencyCoordinator`` (``distributedConcurrency``'s applyHeartbeat): ``{aggregate, handoff, allocation?, ops: [{op:
  heartbeat, now, node, token, lLocal, inflight, ttlMs, seq?, appliedGen?, handoff?, expect: {share, lGlobal,
  nodes, collision, expiresAt, gen?}} | {op: leave, now, node, token, expect: {removed}}]}``; an op's
  ``handoff`` overrides the suite's (a fleet mixing reporters with and without acknowledged handoff).

* ``fluidLp`` (spec 10.5 solveFluidLp, ``lp_solve``): ``{ops: [{types: [{cost, value, weight, hold?}],
  rateBudget, costBudget, concBudget?, expect: {pRate, pCost, pConc, ratePerArrival, costPerArrival}}]}``
  (``pConc`` null with two budgets; the per-arrival budgets null when every weight is 0).
* ``jointLp`` (spec 10.3 step 2, the bid filter, and the adaptive duals; ``jointlp_bid``): ``{jointLp:
  <the policy file's jointLp mapping>, ops: [{cost, value, hold, expect: {policyDenied, bid, pRate,
  pCost, phase, seen}}]}``.

One limiter per suite on one key with a manual clock set to each op's ``now``; state carries across ops.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ._clock import ManualClock
from ._errors import ConfigError
from ._types import Decision
from ._validate import whole
from .concurrency import ConcurrencyGuard, Coordinator, FusedAxes, concurrency_params
from .limiter import Limiter
from .meters import LeakyBucket, LeaseSpender, TokenBudget
from .strategies import Gcra, TokenBucket, strategy_from_options
from .two_tier import DenyCache, LocalLeases

__all__ = ["Mismatch", "SuiteResult", "bundled_vector_files", "load_suites", "run_suite", "run_suites"]

StoreFactory = Callable[[ManualClock], Any]


@dataclass(frozen=True)
class Mismatch:
    """The first field of an op whose value differs from the vector."""

    suite: str
    op_index: int
    field: str
    expected: Any
    got: Any

    def __str__(self) -> str:
        return f"{self.suite} op #{self.op_index}: {self.field} expected {self.expected!r}, got {self.got!r}"


@dataclass
class SuiteResult:
    """Outcome of one suite: how many ops ran and the mismatches (empty when it passed)."""

    name: str
    primitive: str
    source: str
    ops: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.mismatches and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "primitive": self.primitive,
            "source": self.source,
            "ops": self.ops,
            "passed": self.passed,
            "error": self.error,
            "mismatches": [m.__dict__ for m in self.mismatches],
        }


def bundled_vector_files() -> list[Path]:
    """The vector files shipped with the package (``throttlekit/_vectors``) or in the repository."""
    bundled = resources.files("throttlekit").joinpath("_vectors")
    root = Path(str(bundled)) if bundled.is_dir() else Path(__file__).resolve().parent.parent / "vectors"
    files = sorted(root.glob("*.json"))
    if not files:
        raise ConfigError(f"no vector files found in {root}")
    return files


def load_suites(paths: Iterable[Path | str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(file name, suite)`` for every suite of every file."""
    for p in paths:
        path = Path(p)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read vector file {path}: {exc}") from exc
        suites = doc.get("suites") if isinstance(doc, dict) else None
        if not isinstance(suites, list):
            raise ConfigError(f"{path}: expected an object with a 'suites' list")
        for suite in suites:
            yield path.name, suite


def _first_diff(expect: dict[str, Any], got: dict[str, Any], path: str = "") -> tuple[str, Any, Any] | None:
    for name, want in expect.items():
        have = got.get(name)
        if isinstance(want, dict) and isinstance(have, dict):
            inner = _first_diff(want, have, f"{path}{name}.")
            if inner:
                return inner
        elif have != want or type(have) is not type(want):
            return f"{path}{name}", want, have
    return None


def _compare(result: SuiteResult, index: int, expect: dict[str, Any], got: dict[str, Any]) -> None:
    diff = _first_diff(expect, got)
    if diff is not None:
        result.mismatches.append(Mismatch(result.name, index, *diff))


def _unique_prefix() -> str:
    return f"tkv-{uuid.uuid4().hex[:12]}"


def run_suite(suite: dict[str, Any], store_factory: StoreFactory, source: str = "") -> SuiteResult:
    """Replay one suite on a fresh store built by ``store_factory(clock)``."""
    primitive = suite.get("primitive", "rateLimit")
    result = SuiteResult(str(suite.get("name", "?")), primitive, source)
    clock = ManualClock(0)
    store = store_factory(clock)
    prefix = _unique_prefix()
    try:
        if primitive == "rateLimit":
            _run_rate(suite, store, clock, prefix, result)
        elif primitive == "tokenBudget":
            _run_budget(suite, store, clock, prefix, result)
        elif primitive == "lease":
            _run_lease(suite, store, result)
        elif primitive == "leakyBucket":
            _run_leaky(suite, store, clock, prefix, result)
        elif primitive == "twoTierLease":
            _run_l1_lease(suite, store, prefix, result)
        elif primitive == "denyCache":
            _run_deny_cache(suite, store, clock, prefix, result)
        elif primitive == "concurrency":
            _run_concurrency(suite, store, clock, prefix, result)
        elif primitive == "concurrencyCoordinator":
            _run_coordinator(suite, store, prefix, result)
        elif primitive == "unifiedFused":
            _run_fused(suite, store, clock, prefix, result)
        elif primitive == "fluidLp":
            _run_fluid_lp(suite, store, result)
        elif primitive == "jointLp":
            _run_joint_lp(suite, store, prefix, result)
        elif primitive == "coordinator":
            _run_fed_coordinator(suite, store, clock, prefix, result)
        elif primitive == "fairEscrow":
            _run_fair(suite, store, clock, prefix, result)
        elif primitive == "regionPool":
            _run_region_pool(suite, store, clock, prefix, result)
        elif primitive == "regionalEscrow":
            _run_escrow(suite, store, clock, prefix, result)
        else:
            result.error = f"unknown primitive {primitive!r}"
    except Exception as exc:  # a suite that crashes is a failed suite, reported, not a crash of the runner
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        store.close()
    return result


def _run_rate(suite: dict[str, Any], store: Any, clock: ManualClock, prefix: str, r: SuiteResult) -> None:
    spec = suite["strategy"]
    limiter = Limiter(
        strategy_from_options(spec["kind"], spec.get("options", {})), store=store, prefix=prefix, clock=clock
    )
    key = suite.get("key", "k")
    for i, op in enumerate(suite["ops"]):
        clock.set(op["now"])
        kind = op.get("op", "check")
        got: dict[str, Any]
        if kind == "check":
            got = limiter.check(key, op.get("cost", 1)).to_dict()
        elif kind == "peek":
            got = limiter.peek(key).to_dict()
        elif kind == "forecast":
            got = limiter.forecast(key, op.get("cost", 1)).to_dict()
        elif kind == "reset":
            limiter.reset(key)
            continue
        else:
            raise ConfigError(f"op #{i}: unknown op {kind!r}; expected check, peek, forecast or reset")
        r.ops += 1
        _compare(r, i, op["expect"], got)
    limiter.reset(key)


def _run_budget(suite: dict[str, Any], store: Any, clock: ManualClock, prefix: str, r: SuiteResult) -> None:
    o = suite["options"]
    meter = TokenBudget(o["budget"], o["windowMs"], store=store, prefix=prefix, clock=clock)
    for i, op in enumerate(suite["ops"]):
        clock.set(op["now"])
        if op.get("op") == "reset":
            meter.reset("k")
            continue
        if op.get("op") == "remaining":
            got: dict[str, Any] = {"remaining": meter.remaining("k")}
        else:
            got = meter.debit("k", op.get("tokens", 1)).to_dict()
        r.ops += 1
        _compare(r, i, op["expect"], got)
    meter.reset("k")


def _run_lease(suite: dict[str, Any], store: Any, r: SuiteResult) -> None:
    spender = LeaseSpender(
        suite["limit"],
        suite.get("ttlMs", 0),
        window_coupled=suite.get("windowCoupled", True),
        store=store,
        prefix=_unique_prefix(),
    )
    for i, ev in enumerate(suite["events"]):
        if ev["op"] == "grant":
            spender.apply_lease(ev["capacity"], ev.get("expiresAt"))
            continue
        if ev["op"] == "reset":
            spender.reset()
            continue
        if ev["op"] != "spend":
            raise ConfigError(f"event #{i}: unknown op {ev['op']!r}; expected grant, spend or reset")
        d = spender.spend(ev["now"], ev.get("cost", 1))
        r.ops += 1
        got: dict[str, Any] = {"needsRefresh": d is None}
        if d is not None:
            got["decision"] = d.to_dict()
        _compare(r, i, ev["expect"], got)
    spender.reset()


def _run_leaky(suite: dict[str, Any], store: Any, clock: ManualClock, prefix: str, r: SuiteResult) -> None:
    o = suite["options"]
    shaper = LeakyBucket(o["ratePerSec"], o["maxQueueMs"], store=store, prefix=prefix, clock=clock)
    for i, op in enumerate(suite["ops"]):
        clock.set(op["now"])
        res = shaper.reserve("k", op.get("cost", 1))
        r.ops += 1
        _compare(r, i, op["expect"], {"accepted": res.accepted, "delayMs": res.delay_ms})
    shaper.reset("k")


def _run_l1_lease(suite: dict[str, Any], store: Any, prefix: str, r: SuiteResult) -> None:
    leases = LocalLeases(
        store,
        suite["limit"],
        suite.get("ttlMs", 0),
        window_coupled=suite.get("windowCoupled", False),
        low_water=suite.get("lowWater", 0),
        prefix=prefix + ":",
    )
    for i, ev in enumerate(suite["events"]):
        got: dict[str, Any]
        if ev["op"] == "grant":
            applied = leases.grant(
                "k",
                ev.get("now", 0),
                ev["capacity"],
                ev["expiresAt"],
                drop_if_ended=ev.get("dropIfEnded", False),
            )
            got = {"applied": applied}
        else:
            d, refill = leases.spend("k", ev["now"], ev.get("cost", 1), ev.get("discard", True))
            got = {"needsRefresh": d is None, "refill": refill}
            if d is not None:
                got["decision"] = d.to_dict()
        r.ops += 1
        _compare(r, i, ev.get("expect", {}), got)
    leases.forget("k")


def _run_deny_cache(
    suite: dict[str, Any], store: Any, clock: ManualClock, prefix: str, r: SuiteResult
) -> None:
    cache = DenyCache(store, prefix + ":")
    for i, op in enumerate(suite["ops"]):
        clock.set(op["now"])
        got: dict[str, Any]
        if op["op"] == "put":
            denial = Decision(False, op["limit"], 0, op["resetAt"], op["retryAfterMs"])
            got = {"until": cache.put("k", op["now"], denial)}
        else:
            d = cache.lookup("k", op["now"])
            got = {"hit": d is not None}
            if d is not None:
                got["decision"] = d.to_dict()
        r.ops += 1
        _compare(r, i, op["expect"], got)
    cache.forget("k")


_GUARD_OPTIONS = {
    "minLimit": "min_limit",
    "maxLimit": "max_limit",
    "initialLimit": "initial_limit",
    "algorithm": "algorithm",
    "rttWindow": "rtt_window",
    "smoothing": "smoothing",
    "tolerance": "tolerance",
    "backoffRatio": "backoff_ratio",
    "recalibration": "recalibration",
}


def _run_concurrency(
    suite: dict[str, Any], store: Any, clock: ManualClock, prefix: str, r: SuiteResult
) -> None:
    opts = suite.get("options", {})
    unknown = set(opts) - set(_GUARD_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown concurrency option(s) {sorted(unknown)}")
    params = concurrency_params(**{_GUARD_OPTIONS[k]: v for k, v in opts.items()})
    guard = ConcurrencyGuard(params, store=store, key=f"{prefix}:guard", clock=clock)
    grants: dict[int, Any] = {}
    for i, op in enumerate(suite["ops"]):
        clock.set(op["now"])
        got: dict[str, Any]
        if op["op"] == "acquire":
            g = guard.acquire(op.get("cap", -1), op.get("fenceAt", -1))
            grants[i] = g
            got = {"slot": g.slot, **g.decision.to_dict()}
        elif op["op"] == "release":
            st = guard.release(grants[op["of"]], op.get("dropped", False), sample=op.get("sample", True))
            got = {
                "limit": st.limit,
                "inflight": st.inflight,
                "rttNoload": st.rtt_noload,
                "lastRtt": st.last_rtt,
            }
        else:
            raise ConfigError(f"op #{i}: unknown op {op['op']!r}; expected acquire or release")
        r.ops += 1
        _compare(r, i, op["expect"], got)
    guard.reset()


def _run_coordinator(suite: dict[str, Any], store: Any, prefix: str, r: SuiteResult) -> None:
    nodes: dict[tuple[str, str, bool], Coordinator] = {}
    aggregate = suite.get("aggregate", "median")
    allocation = suite.get("allocation", "equal-split")
    last: Coordinator | None = None
    for i, op in enumerate(suite["ops"]):
        handoff = bool(op.get("handoff", suite.get("handoff", False)))
        ident = (op["node"], op["token"], handoff)
        c = nodes.get(ident)
        if c is None:
            c = nodes[ident] = Coordinator(
                store,
                "k",
                op["node"],
                prefix=f"{prefix}:",
                aggregate=aggregate,
                handoff=handoff,
                allocation=allocation,
            )
            c.token = op["token"]
        last = c
        got: dict[str, Any]
        if op["op"] == "heartbeat":
            s = c.heartbeat(
                op["lLocal"],
                op["inflight"],
                op["ttlMs"],
                op["now"],
                seq=op.get("seq", -1),
                applied_gen=op.get("appliedGen", -1),
            )
            got = {
                "share": s.share,
                "lGlobal": s.l_global,
                "nodes": s.nodes,
                "collision": s.collision,
                "expiresAt": s.expires_at,
                "gen": s.gen,
            }
        elif op["op"] == "leave":
            got = {"removed": c.leave(op["now"])}
        else:
            raise ConfigError(f"op #{i}: unknown op {op['op']!r}; expected heartbeat or leave")
        r.ops += 1
        _compare(r, i, op["expect"], got)
    if last is not None:
        for key in last.keys:
            store.delete(key)


def _run_fused(suite: dict[str, Any], store: Any, clock: ManualClock, prefix: str, r: SuiteResult) -> None:
    rate, cost = suite["rate"], suite["cost"]
    fused = FusedAxes(
        Gcra(rate["limit"], rate["periodMs"], burst=rate.get("burst")),
        TokenBucket(cost["capacity"], cost["refillPerSec"]),
        store=store,
        rate_prefix=f"{prefix}:rate",
        cost_prefix=f"{prefix}:cost",
        clock=clock,
    )
    for i, op in enumerate(suite["ops"]):
        clock.set(op["now"])
        d = fused.check("k", op.get("cost", 1))
        got = {**d.decision.to_dict(), "rate": d.rate.to_dict(), "cost": d.cost.to_dict()}
        r.ops += 1
        _compare(r, i, op["expect"], got)
    fused.reset("k")


def _run_fluid_lp(suite: dict[str, Any], store: Any, r: SuiteResult) -> None:
    from .jointlp import solve_fluid_lp

    for i, op in enumerate(suite["ops"]):
        s = solve_fluid_lp(op["types"], op["rateBudget"], op["costBudget"], op.get("concBudget"), store=store)
        got = {
            "pRate": whole(s.duals.rate),
            "pCost": whole(s.duals.cost),
            "pConc": None if s.duals.conc is None else whole(s.duals.conc),
            "ratePerArrival": None if s.rate_per_arrival is None else whole(s.rate_per_arrival),
            "costPerArrival": None if s.cost_per_arrival is None else whole(s.cost_per_arrival),
        }
        r.ops += 1
        _compare(r, i, op["expect"], got)


def _run_joint_lp(suite: dict[str, Any], store: Any, prefix: str, r: SuiteResult) -> None:
    from .jointlp import BidFilter

    f = BidFilter(suite["jointLp"], store=store, key=f"{prefix}:jointlp", solve_store=store)
    for i, op in enumerate(suite["ops"]):
        v = f.check(op.get("cost", 1), op.get("value", 1), op.get("hold", 0))
        got = {
            "policyDenied": v.denied,
            "bid": whole(v.bid),
            "pRate": whole(v.p_rate),
            "pCost": whole(v.p_cost),
            "phase": v.phase,
            "seen": v.seen,
        }
        r.ops += 1
        _compare(r, i, op["expect"], got)
    f.reset()


def _run_fed_coordinator(
    suite: dict[str, Any], store: Any, clock: ManualClock, prefix: str, r: SuiteResult
) -> None:
    from .federation import Coordinator as FederationCoordinator

    coord = FederationCoordinator(
        store,
        window_ms=suite["windowMs"],
        budget=suite["budget"],
        anchor=suite.get("anchor", 0),
        budgets=suite.get("budgets"),
        prefix=prefix,
        clock=clock,
    )
    keys: set[str] = set()
    for i, op in enumerate(suite["ops"]):
        clock.set(op["now"])
        key = op.get("key", "k")
        keys.add(key)
        got: dict[str, Any]
        if op["op"] == "lease":
            g = coord.lease(
                key,
                op["tokens"],
                has=op.get("has", 0),
                cost=op.get("cost", 1),
                for_expires_at=op.get("forExpiresAt"),
            )
            got = {
                "granted": g.granted,
                "expiresAt": g.expires_at,
                "ttlMs": g.ttl_ms,
                "budgetLeft": g.budget_left,
                "decision": g.decision.to_dict(),
            }
        elif op["op"] == "reconcile":
            c = coord.reconcile(key, op["leftover"], op["windowStart"], op.get("reconciler", "r"))
            got = {"credited": c.credited, "budgetLeft": c.budget_left, "applied": c.applied}
        else:
            raise ConfigError(f"op #{i}: unknown op {op['op']!r}; expected lease or reconcile")
        r.ops += 1
        _compare(r, i, op["expect"], got)
    for key in keys:
        store.delete(coord.full_key(key))


def _run_fair(suite: dict[str, Any], store: Any, clock: ManualClock, prefix: str, r: SuiteResult) -> None:
    from .fairness import _reply, wfe_args

    key = f"{getattr(store, 'prefix', '') and store.prefix + ':'}{prefix}:wfe"
    for i, op in enumerate(suite["ops"]):
        clock.set(op["now"])
        if op.get("op") == "stats":
            got_stats = store.eval(
                "wfe_stats", (key,), op["now"], (suite["windowMs"], suite["limit"], op["top"])
            )
            r.ops += 1
            names = ("windowStart", "budget", "evicted", "used", "tenantCount", "tenants")
            _compare(r, i, op["expect"], {n: _plain(v) for n, v in zip(names, got_stats)})
            continue
        args = wfe_args(
            suite["windowMs"],
            suite["limit"],
            suite.get("maxTenants", 100_000),
            suite.get("idleMs", 0),
            op["tenant"],
            op.get("weight", 1),
            op.get("cost", 1),
            op.get("budget", -1),
        )
        got = _reply(store.eval("wfe_check", (key,), op["now"], args))
        r.ops += 1
        _compare(
            r,
            i,
            op["expect"],
            {
                "decision": got.decision.to_dict(),
                "need": got.need,
                "weightSum": int(got.weight_sum) if got.weight_sum.is_integer() else got.weight_sum,
                "budget": got.budget,
            },
        )
    store.delete(key)


def _plain(value: Any) -> Any:
    """A reply value as JSON compares it (bytes as text, nested arrays as lists)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (list, tuple)):
        return [_plain(x) for x in value]
    return value


def _run_region_pool(
    suite: dict[str, Any], store: Any, clock: ManualClock, prefix: str, r: SuiteResult
) -> None:
    from .fairness import RegionFairPool

    pool = RegionFairPool(
        store, limit=suite["limit"], window_ms=suite["windowMs"], key="pool", prefix=prefix, clock=clock
    )
    for i, op in enumerate(suite["ops"]):
        clock.set(op["now"])
        granted, start = pool.grant(op["region"], op["weight"], op["want"], op.get("windowStart"))
        r.ops += 1
        _compare(r, i, op["expect"], {"granted": granted, "windowStart": start})
    store.delete(pool.key)


def _run_escrow(suite: dict[str, Any], store: Any, clock: ManualClock, prefix: str, r: SuiteResult) -> None:
    from .federation import RegionalEscrow

    escrow = RegionalEscrow(
        store, region=suite.get("region", "r"), window_ms=suite["windowMs"], prefix=prefix, clock=clock
    )
    keys: set[str] = set()
    for i, op in enumerate(suite["ops"]):
        clock.set(op["now"])
        key = op.get("key", "k")
        keys.add(key)
        got: dict[str, Any]
        if op["op"] == "lease":
            g = escrow.lease(
                key, op["tokens"], has=op.get("has", 0), cost=op.get("cost", 1), limit=op.get("limit", 0)
            )
            got = {"granted": g.granted, "balance": g.balance, "expiresAt": g.expires_at}
        elif op["op"] == "refill":
            g = escrow.refill(
                key,
                op["granted"],
                op["windowStart"],
                take=op.get("take", 0),
                has=op.get("has", 0),
                cost=op.get("cost", 1),
                limit=op.get("limit", 0),
            )
            got = {"taken": g.granted, "balance": g.balance, "expiresAt": g.expires_at, "applied": g.applied}
        elif op["op"] == "release":
            n, applied = escrow.release(key, op["windowStart"])
            got = {"released": n, "applied": applied}
        else:
            raise ConfigError(f"op #{i}: unknown op {op['op']!r}; expected lease, refill or release")
        if op["op"] != "release":
            got["decision"] = g.decision.to_dict()
        r.ops += 1
        _compare(r, i, op["expect"], got)
    for key in keys:
        store.delete(escrow.full_key(key))


def run_suites(
    paths: Iterable[Path | str],
    store_factory: StoreFactory,
    progress: Callable[[str], None] | None = None,
    every_s: float = 2.0,
) -> list[SuiteResult]:
    """Replay every suite of every file; one result per suite, in file order. ``progress`` receives a
    line (suites and ops done, failures so far, elapsed) at most every ``every_s`` seconds, and a last one
    when a run that reported progress ends."""
    suites = list(load_suites(paths))
    results: list[SuiteResult] = []
    start = last = time.monotonic()
    reported = False
    for src, s in suites:
        results.append(run_suite(s, store_factory, src))
        now = time.monotonic()
        if progress is not None and now - last >= every_s:
            last, reported = now, True
            progress(_progress_line(results, len(suites), now - start))
    if progress is not None and reported:
        progress(_progress_line(results, len(suites), time.monotonic() - start))
    return results


def _progress_line(results: list[SuiteResult], total: int, elapsed: float) -> str:
    failed = sum(not r.passed for r in results)
    ops = sum(r.ops for r in results)
    return f"verify: {len(results)}/{total} suites, {ops:,} ops, {failed} failed, {elapsed:.1f} s"
