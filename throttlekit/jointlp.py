"""Joint-LP admission (spec 10.3 step 2 and 10.5): the bid-price filter of a unified admitter.

Each admit carries a ``value`` (what admitting it earns), a ``cost`` (what it spends of the cost budget)
and an expected ``hold`` (how long it keeps a concurrency slot). The filter prices an admit with dual
prices of the rate, cost and concurrency budgets: ``bid = p_rate + p_cost * cost (+ p_conc * hold iff a
concurrency dual is set and hold > 0)``, and denies it (``policy_denied``) when ``value < bid``.

The duals come from one of two forms (:class:`JointLp`):

* ``duals``: given directly (``{rate, cost, conc?}``, each finite >= 0);
* a workload: ``types`` (``{cost, value, weight, hold?}``), ``rateBudget``, ``costBudget`` and an optional
  ``concBudget`` (every type then has a ``hold``), solved at construction by the Lua solver
  (``lp_solve``, :func:`solve_fluid_lp`); with ``adaptive: {sampleWindow: W}`` the duals are re-learnt
  once from the first ``W`` admits the filter prices (``jointlp_bid``).

Every number is computed by Lua (``lua/lib/fluid_lp.lua``); this module validates, packs the ARGV and
reads the replies by name. Fractional numbers cross exactly: ARGV as Python's ``repr`` text, replies as
``%.17g`` strings (see the manifest).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _validate as v_
from ._errors import NO_VALUE, ConfigError
from ._loader import load_manifest, reply_index

__all__ = [
    "MAX_SAMPLE_WINDOW",
    "MAX_TYPES",
    "POLICIES",
    "BidFilter",
    "BidVerdict",
    "Duals",
    "JointLp",
    "LpSolution",
    "LpType",
    "joint_lp",
    "solve_fluid_lp",
]

#: The admission policies of a unified admitter: ``marginal`` (every axis decides alone, the default) and
#: ``joint-lp`` (the bid-price filter first).
POLICIES = ("marginal", "joint-lp")
#: Most workload types (and most distinct types the adaptive learner tallies): the three-budget solver
#: tries every triple of ``types + 3`` planes, ~48,000 candidates at 64 types.
MAX_TYPES = 64
#: Longest adaptive learning window: the learner keeps the window's arrivals (one small integer each) in
#: its state and rewrites it on each tallied admit.
MAX_SAMPLE_WINDOW = 10_000
#: Largest number a joint-LP field takes (exact integers in Lua stay below 2^53).
_HIGH = float(v_.MAX_SAFE_INTEGER)

_SOLVE = load_manifest()["lp_solve"]
_S_RATE, _S_COST, _S_CONC, _S_RPA, _S_CPA = reply_index(
    _SOLVE, ("p_rate", "p_cost", "p_conc", "rate_per_arrival", "cost_per_arrival")
)
_BID = load_manifest()["jointlp_bid"]
_B_DENIED, _B_BID, _B_RATE, _B_COST, _B_PHASE, _B_SEEN = reply_index(
    _BID, ("denied", "bid", "p_rate", "p_cost", "phase", "seen")
)
#: ``jointlp_bid``'s phase numbers.
PHASES = ("static", "learning", "frozen-prior", "frozen-learned")


def _num(s: Any) -> float:
    return float(s.decode() if isinstance(s, bytes) else s)


@dataclass(frozen=True)
class LpType:
    """One workload type: ``cost`` (cost-budget units per admit), ``value``, ``weight`` (how many such
    admits, or their share) and ``hold`` (slot time per admit; set on every type iff a conc budget is)."""

    cost: float
    value: float
    weight: float = 1
    hold: float | None = None


@dataclass(frozen=True)
class Duals:
    """Dual prices: ``rate`` (per admit), ``cost`` (per cost unit), ``conc`` (per unit of hold; None: no
    concurrency dual, the hold never counts)."""

    rate: float
    cost: float
    conc: float | None = None


@dataclass(frozen=True)
class LpSolution:
    """``solve_fluid_lp``'s answer: the duals and the per-arrival budgets (budget / sum of the weights;
    None when every weight is 0) that the adaptive learner re-solves with."""

    duals: Duals
    rate_per_arrival: float | None
    cost_per_arrival: float | None


def _types_text(types: Sequence[LpType], three: bool) -> str:
    def one(t: LpType) -> str:
        f = [repr(float(t.cost)), repr(float(t.value)), repr(float(t.weight))]
        if three:
            f.append(repr(float(t.hold if t.hold is not None else 0)))
        return ",".join(f)

    return ";".join(one(t) for t in types)


def _fin(c: v_.Checks, field: str, x: Any, positive: bool = False) -> Any:
    return c(v_.number, field, x, low=0, low_open=positive, high=_HIGH)


def _check_workload(
    c: v_.Checks, types: Any, rate_budget: Any, cost_budget: Any, conc_budget: Any
) -> tuple[LpType, ...]:
    out: list[LpType] = []
    if not isinstance(types, (list, tuple)) or not types:
        c.error(
            "types",
            "must be a non-empty list of {cost, value, weight, hold?}",
            types,
            f"1 to {MAX_TYPES} types",
        )
        types = []
    elif len(types) > MAX_TYPES:
        c.error("types", f"has {len(types)} types", NO_VALUE, f"at most {MAX_TYPES} types")
        types = []
    holds = 0
    for i, t in enumerate(types):
        where = f"types[{i}]"
        if isinstance(t, LpType):
            t = {
                "cost": t.cost,
                "value": t.value,
                "weight": t.weight,
                **({} if t.hold is None else {"hold": t.hold}),
            }
        if not isinstance(t, Mapping):
            c.error(where, "must be a mapping {cost, value, weight, hold?}", t, "a mapping")
            continue
        unknown = set(t) - {"cost", "value", "weight", "hold"}
        for k in sorted(map(str, unknown)):
            c.error(f"{where}.{k}", "is not a type field", NO_VALUE, "cost, value, weight, hold")
        for k in ("cost", "value", "weight"):
            if k not in t:
                c.error(f"{where}.{k}", "is missing", NO_VALUE, "a finite number >= 0")
        cost = _fin(c, f"{where}.cost", t.get("cost", 0))
        value = _fin(c, f"{where}.value", t.get("value", 0))
        weight = _fin(c, f"{where}.weight", t.get("weight", 0))
        hold = None
        if "hold" in t:
            holds += 1
            hold = _fin(c, f"{where}.hold", t["hold"])
        out.append(LpType(cost or 0, value or 0, weight or 0, hold))
    _fin(c, "rateBudget", rate_budget, positive=True)
    _fin(c, "costBudget", cost_budget, positive=True)
    if conc_budget is not None:
        _fin(c, "concBudget", conc_budget)
        if out and holds != len(out):
            c.error(
                "types",
                "need a hold on every type when concBudget is set",
                NO_VALUE,
                "hold: a finite number >= 0 on each type",
            )
    elif holds:
        c.error(
            "concBudget",
            "is missing: the types carry a hold",
            NO_VALUE,
            "a finite number >= 0 (or no hold on any type)",
        )
    return tuple(out)


def solve_fluid_lp(
    types: Sequence[LpType | Mapping[str, Any]],
    rate_budget: float,
    cost_budget: float,
    conc_budget: float | None = None,
    *,
    store: Any = None,
) -> LpSolution:
    """The joint-LP duals of a workload (spec 10.5 ``solveFluidLp``), computed by the ``lp_solve``
    transform on ``store`` (default: a private in-process store). Two budgets without ``conc_budget``,
    three with it (every type then needs a ``hold``). Bad input is one :class:`ConfigError` naming every
    bad field."""
    c = v_.Checks("jointLp")
    clean = _check_workload(c, list(types), rate_budget, cost_budget, conc_budget)
    c.done()
    three = conc_budget is not None
    args = (
        _types_text(clean, three),
        float(rate_budget),
        float(cost_budget),
        float(conc_budget) if conc_budget is not None else -1,
    )
    r = _eval(store, "lp_solve", (), args)
    rpa, cpa = _num(r[_S_RPA]), _num(r[_S_CPA])
    duals = Duals(_num(r[_S_RATE]), _num(r[_S_COST]), _num(r[_S_CONC]) if three else None)
    return LpSolution(duals, rpa if rpa >= 0 else None, cpa if cpa >= 0 else None)


def _eval(store: Any, name: str, keys: Sequence[str], args: Sequence[Any]) -> Sequence[Any]:
    if store is not None:
        return store.eval(name, keys, 0, args)  # type: ignore[no-any-return]
    from .stores import MemoryStore

    private = MemoryStore()
    try:
        return private.eval(name, keys, 0, args)
    finally:
        private.close()


@dataclass(frozen=True)
class JointLp:
    """A validated joint-LP configuration (:func:`joint_lp` builds one from the ``jointLp`` mapping).

    Exactly one form: ``duals`` (given), or the workload ``types`` + ``rate_budget`` + ``cost_budget`` (+
    ``conc_budget``) solved at construction. ``sample_window`` (adaptive) needs the workload form without
    a conc budget."""

    duals: Duals | None = None
    types: tuple[LpType, ...] = ()
    rate_budget: float | None = None
    cost_budget: float | None = None
    conc_budget: float | None = None
    sample_window: int | None = None

    def __post_init__(self) -> None:
        _check(self)

    @property
    def adaptive(self) -> bool:
        return self.sample_window is not None

    def describe(self) -> str:
        if self.duals is not None:
            d = self.duals
            conc = f", conc {d.conc:g}" if d.conc is not None else ""
            return f"joint-lp duals rate {d.rate:g}, cost {d.cost:g}{conc}"
        adaptive = f", adaptive over {self.sample_window} admits" if self.adaptive else ""
        return f"joint-lp on a workload of {len(self.types)} type(s){adaptive}"

    def fingerprint(self) -> str:
        """A short id of this configuration (the adaptive learner restarts when it changes)."""
        text = repr(
            (self.duals, self.types, self.rate_budget, self.cost_budget, self.conc_budget, self.sample_window)
        )
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def _check(cfg: JointLp) -> None:
    c = v_.Checks("jointLp")
    workload = bool(cfg.types) or cfg.rate_budget is not None or cfg.cost_budget is not None
    if cfg.duals is not None and (workload or cfg.conc_budget is not None):
        c.error(
            "duals",
            "is given together with a workload (types, rateBudget, costBudget)",
            NO_VALUE,
            "either duals or a workload, not both",
        )
    elif cfg.duals is None and not workload:
        c.error(
            "",
            "needs duals or a workload",
            NO_VALUE,
            "duals: {rate, cost, conc?} or types, rateBudget, costBudget, concBudget?",
        )
    if cfg.duals is not None:
        _fin(c, "duals.rate", cfg.duals.rate)
        _fin(c, "duals.cost", cfg.duals.cost)
        if cfg.duals.conc is not None:
            _fin(c, "duals.conc", cfg.duals.conc)
    elif workload:
        _check_workload(c, list(cfg.types), cfg.rate_budget, cfg.cost_budget, cfg.conc_budget)
        if cfg.sample_window is not None and c.ok and not any(t.weight > 0 for t in cfg.types):
            c.error(
                "types",
                "all have weight 0: adaptive needs per-arrival budgets (budget / sum of weights)",
                NO_VALUE,
                "at least one weight > 0",
            )
    if cfg.sample_window is not None:
        c(v_.integer, "adaptive.sampleWindow", cfg.sample_window, 1, MAX_SAMPLE_WINDOW)
        if cfg.duals is not None:
            c.error(
                "adaptive",
                "needs the workload form (it re-solves the workload's LP)",
                NO_VALUE,
                "types, rateBudget, costBudget with adaptive",
            )
        if cfg.conc_budget is not None or (cfg.duals is not None and cfg.duals.conc is not None):
            c.error(
                "adaptive",
                "is incompatible with a concurrency dual (concBudget)",
                NO_VALUE,
                "adaptive without concBudget",
            )
    c.done()


_TOP = ("duals", "types", "rateBudget", "costBudget", "concBudget", "adaptive")


def joint_lp(spec: Any) -> JointLp:
    """A :class:`JointLp` from the ``jointLp`` mapping (the policy file's and the embedded API's form):
    ``{duals: {rate, cost, conc?}}`` or ``{types: [{cost, value, weight, hold?}], rateBudget,
    costBudget, concBudget?, adaptive?: {sampleWindow}}``. Every problem is reported at once."""
    if isinstance(spec, JointLp):
        return spec
    c = v_.Checks("jointLp")
    if not isinstance(spec, Mapping):
        c.error(
            "",
            "must be a mapping",
            spec,
            "{duals: {rate, cost, conc?}} or {types, rateBudget, costBudget, concBudget?, adaptive?}",
        )
        c.done()
    for k in spec:
        if k not in _TOP:
            c.error(
                str(k), "is not a jointLp field", NO_VALUE, ", ".join(_TOP) + v_.did_you_mean(str(k), _TOP)
            )
    duals = None
    broken = False  # a structural problem: building the config would only add noise
    if "duals" in spec:
        d = spec["duals"]
        if not isinstance(d, Mapping):
            c.error("duals", "must be a mapping {rate, cost, conc?}", d, "a mapping")
            broken = True
        else:
            for k in d:
                if k not in ("rate", "cost", "conc"):
                    c.error(f"duals.{k}", "is not a dual", NO_VALUE, "rate, cost, conc")
            for k in ("rate", "cost"):
                if k not in d:
                    c.error(f"duals.{k}", "is missing", NO_VALUE, "a finite number >= 0")
                    broken = True
            duals = Duals(d.get("rate", 0), d.get("cost", 0), d.get("conc"))
    window = None
    if "adaptive" in spec:
        a = spec["adaptive"]
        if not isinstance(a, Mapping) or set(a) != {"sampleWindow"}:
            c.error(
                "adaptive",
                "must be {sampleWindow: <integer>}",
                a,
                f"{{sampleWindow: 1..{MAX_SAMPLE_WINDOW}}}",
            )
            broken = True
        else:
            window = a["sampleWindow"]
    types: Any = spec.get("types", ())
    if "types" in spec and isinstance(types, (list, tuple)) and not types:
        c.error("types", "must not be empty", types, f"1 to {MAX_TYPES} types {{cost, value, weight, hold?}}")
        broken = True
    cfg = None
    if not broken:
        try:
            cfg = JointLp(
                duals,
                tuple(_as_type(t) for t in types) if isinstance(types, (list, tuple)) else types,
                spec.get("rateBudget"),
                spec.get("costBudget"),
                spec.get("concBudget"),
                window,
            )
        except ConfigError as exc:
            c.fail(exc)
    c.done()
    assert cfg is not None
    return cfg


def _as_type(t: Any) -> Any:
    fields = {"cost", "value", "weight", "hold"}
    if (
        isinstance(t, Mapping)
        and set(t) <= fields
        and all(k in t for k in ("cost", "value", "weight"))
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in t.values())
    ):
        return LpType(t["cost"], t["value"], t["weight"], t.get("hold"))
    return t  # reported by the check, with its index


@dataclass(frozen=True)
class BidVerdict:
    """One filter answer: ``denied`` (value < bid), the ``bid``, the duals that priced it, the learner's
    ``phase`` after this admit (static, learning, frozen-prior, frozen-learned) and ``seen`` (admits the
    learner has tallied)."""

    denied: bool
    bid: float
    p_rate: float
    p_cost: float
    phase: str
    seen: int


class BidFilter:
    """The joint-LP bid-price filter of one admitter, over ``jointlp_bid``.

    A workload is solved at construction (``lp_solve`` on ``solve_store``, default a private in-process
    store). The adaptive learner's state is the hash ``key`` of ``store`` (one per policy: on a shared
    Redis or Postgres every server of a fleet feeds and reads one learner); a static filter touches no
    state. ``store`` may be sync (``eval``) or async (``aeval``, use :meth:`acheck`)."""

    def __init__(
        self,
        config: JointLp | Mapping[str, Any],
        *,
        store: Any = None,
        key: str = "jointlp",
        solve_store: Any = None,
    ) -> None:
        self.config = joint_lp(config)
        cfg = self.config
        if cfg.duals is not None:
            self.duals = cfg.duals
            rpa = cpa = 0.0
        else:
            assert cfg.rate_budget is not None and cfg.cost_budget is not None  # checked: a workload
            sol = solve_fluid_lp(
                cfg.types, cfg.rate_budget, cfg.cost_budget, cfg.conc_budget, store=solve_store
            )
            self.duals = sol.duals
            rpa, cpa = sol.rate_per_arrival or 0.0, sol.cost_per_arrival or 0.0
        self.store = store
        self.key = key
        self._keys = (key,)
        d = self.duals
        self._tail = (
            float(d.rate),
            float(d.cost),
            float(d.conc) if d.conc is not None else -1.0,
            cfg.sample_window or 0,
            float(rpa),
            float(cpa),
            cfg.fingerprint(),
        )

    def _args(self, cost: float, value: float, hold: float) -> tuple[Any, ...]:
        if not (math.isfinite(cost) and cost > 0) or not (math.isfinite(value) and value > 0):
            raise ConfigError(
                field="cost/value",
                value=(cost, value),
                problem="must be finite and > 0",
                allowed="cost > 0, value > 0",
            )
        h = float(hold) if math.isfinite(hold) and hold > 0 else 0.0
        return (float(cost), float(value), h, *self._tail)

    @staticmethod
    def _verdict(r: Sequence[Any]) -> BidVerdict:
        return BidVerdict(
            r[_B_DENIED] == 1,
            _num(r[_B_BID]),
            _num(r[_B_RATE]),
            _num(r[_B_COST]),
            PHASES[int(r[_B_PHASE])],
            int(r[_B_SEEN]),
        )

    def _store(self) -> Any:
        if self.store is None:
            from .stores import MemoryStore

            self.store = MemoryStore()
            self._owned = True
        return self.store

    _owned = False

    def check(self, cost: float = 1, value: float = 1, hold: float = 0) -> BidVerdict:
        """Price one admit (sync store)."""
        return self._verdict(self._store().eval("jointlp_bid", self._keys, -1, self._args(cost, value, hold)))

    async def acheck(self, cost: float = 1, value: float = 1, hold: float = 0) -> BidVerdict:
        """Price one admit (async store: ``aeval``)."""
        return self._verdict(
            await self._store().aeval("jointlp_bid", self._keys, -1, self._args(cost, value, hold))
        )

    def reset(self) -> None:
        """Forget what the adaptive learner tallied (it starts over)."""
        self._store().delete(self.key)

    def close(self) -> None:
        if self._owned and self.store is not None:
            self.store.close()
