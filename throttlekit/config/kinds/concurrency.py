"""In-flight admitters served by Admit/Release/Heartbeat: ``concurrency:`` (per process) and
``distributedConcurrency:`` (one ceiling across every server on a shared Redis or Postgres).

::

    checkout:
      concurrency: { minLimit: 4, maxLimit: 200 }              # gradient2 by default
    pinned:
      concurrency: { minLimit: 3, maxLimit: 3 }                # a fixed cap
    unified:                                                    # rate x concurrency
      strategy: gcra
      limit: 5
      period: 1s
      concurrency: { minLimit: 2, maxLimit: 2 }
    fleet-wide:
      distributedConcurrency: { minLimit: 12, maxLimit: 12, heartbeatMs: 500, aggregate: min }
    by-demand:                                                  # idle servers lend their share
      distributedConcurrency: { minLimit: 12, maxLimit: 12, allocation: demand-proportional }

Block fields and defaults (spec server 2.5): ``minLimit`` 4, ``maxLimit`` 512, ``initialLimit`` =
minLimit, ``algorithm`` gradient2 | aimd, ``rttWindow`` 100, ``smoothing`` 0.2, ``tolerance`` 2.0,
``backoffRatio`` 0.9, ``recalibration`` (spec 9.2, off unless present: ``{intervalMs, probeLimit,
probeSamples}``, all optional); distributedConcurrency adds ``aggregate`` median | min, ``allocation``
equal-split | demand-proportional (spec 9.4 step 4; our extension: the upstream server YAML does not expose
it; every server of the fleet must use the same, as for aggregate), ``prefix`` (the
coordinator key prefix, default ``tk:fed``), ``heartbeatMs`` 1000, ``onCoordinatorOutage`` fail-closed |
local-only, ``handoff`` (acknowledged handoff, spec 9.4; default false), ``eagerHandoff`` (off-cycle beats,
spec 9.3; default false) and ``minHeartbeatMs`` (their debounce; default heartbeatMs / 10, at least 1;
only with eagerHandoff). Unknown keys are errors. A policy that also has ``strategy`` (and its fields) is a unified
rate x concurrency admitter whose rate axis is the plain policy's limiter (prefix as for a plain policy).
The values are checked by :func:`throttlekit.concurrency.concurrency_params`.

``jointLp:`` (our extension; the upstream's YAML cannot enable it) beside either block turns on the
joint-LP bid-price filter (spec 10.3 step 2): ``{duals: {rate, cost, conc?}}`` or a workload ``{types:
[{cost, value, weight, hold?}], rateBudget, costBudget, concBudget?, adaptive?: {sampleWindow}}``,
checked by :func:`throttlekit.jointlp.joint_lp` and, for a workload, solved by the Lua solver at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ... import _validate as v
from ..._errors import ConfigError
from ...concurrency import ALLOCATIONS, concurrency_params
from ...jointlp import JointLp, joint_lp
from .._issues import MISSING
from .._model import ConcurrencyPolicy, DistributedConcurrencyPolicy, Policy, RatePolicy
from . import _fields as f
from . import plain
from ._block import block_context, block_mapping

if TYPE_CHECKING:
    from . import PolicyContext

__all__ = ["CONCURRENCY", "DISTRIBUTED_CONCURRENCY"]

_GUARD = {
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
_FLEET = (
    "aggregate",
    "allocation",
    "prefix",
    "heartbeatMs",
    "onCoordinatorOutage",
    "handoff",
    "eagerHandoff",
    "minHeartbeatMs",
)
OUTAGE_MODES = ("fail-closed", "local-only")
#: Longest heartbeat period (ms).
MAX_HEARTBEAT_MS = 600_000
#: The joint-LP block (our extension), accepted beside concurrency / distributedConcurrency.
JOINT_LP = "jointLp"


class _Admitter:
    name: str = "admitter"

    def __init__(self, block: str, fleet: bool) -> None:
        self.block: str | None = block
        self.fleet = fleet
        self.keys: frozenset[str] = plain.KIND.keys | {JOINT_LP}
        self.fields = tuple(_GUARD) + (_FLEET if fleet else ())

    def accepted_keys(self, spec: Mapping[str, Any]) -> frozenset[str]:
        rate = plain.KIND.accepted_keys(spec) if "strategy" in spec else frozenset({"strategy"})
        return rate | {JOINT_LP}

    @staticmethod
    def _joint_lp(ctx: PolicyContext, spec: Mapping[str, Any]) -> JointLp | None:
        if JOINT_LP not in spec:
            return None
        try:
            return joint_lp(spec[JOINT_LP])
        except ConfigError as exc:
            for e in exc.errors:
                e.scope = ""  # the block context names the block
            block_context(ctx, JOINT_LP).report(exc)
            return None

    def build(self, ctx: PolicyContext, spec: Mapping[str, Any]) -> Policy | None:
        assert self.block is not None
        before = len(ctx.issues.items)
        rest = {k: x for k, x in spec.items() if k not in (self.block, JOINT_LP)}
        rate: Policy | None = None
        if "strategy" in rest:
            rate = plain.KIND.build(ctx, rest)
        else:
            for key in rest:
                ctx.error(
                    str(key),
                    "is a rate field: a unified admitter needs `strategy` too",
                    rest[key],
                    "strategy and its fields, or none of them",
                )
        block = block_mapping(ctx, spec, self.block, self.fields)
        if block is MISSING:
            return None
        sub = block_context(ctx, self.block)
        try:
            params = concurrency_params(**{_GUARD[k]: x for k, x in block.items() if k in _GUARD})
        except ConfigError as exc:
            sub.report(exc)
            return None
        lp = self._joint_lp(ctx, spec)
        strategy = rate.strategy if isinstance(rate, RatePolicy) else None
        prefix = rate.prefix if isinstance(rate, RatePolicy) else ctx.prefix(spec)
        if not self.fleet:
            if len(ctx.issues.items) > before:
                return None
            return ConcurrencyPolicy(ctx.name, params, strategy, prefix, lp)
        aggregate = f.check(sub, block, "aggregate", v.choice, ("median", "min"))
        allocation = f.check(sub, block, "allocation", v.choice, ALLOCATIONS)
        outage = f.check(sub, block, "onCoordinatorOutage", v.choice, OUTAGE_MODES)
        beat = f.check(sub, block, "heartbeatMs", v.integer, 1, MAX_HEARTBEAT_MS)
        coord = block.get("prefix", "tk:fed")
        if not isinstance(coord, str):
            sub.error("prefix", "must be a string", coord, "any string (default tk:fed)")
        flags = {}
        for name in ("handoff", "eagerHandoff"):
            flag = block.get(name, False)
            if not isinstance(flag, bool):
                sub.error(name, "must be true or false", flag, "true or false (default false)")
            flags[name] = flag is True
        period = 1000 if beat is MISSING else beat
        min_beat = f.check(sub, block, "minHeartbeatMs", v.integer, 1, MAX_HEARTBEAT_MS)
        if min_beat is not MISSING:
            if not flags["eagerHandoff"]:
                sub.error(
                    "minHeartbeatMs",
                    "has no effect without eagerHandoff: true",
                    min_beat,
                    "eagerHandoff: true, or no minHeartbeatMs",
                )
            elif min_beat > period:
                sub.error(
                    "minHeartbeatMs",
                    "is above heartbeatMs",
                    min_beat,
                    f"an integer from 1 to heartbeatMs ({period})",
                )
        if len(ctx.issues.items) > before:
            return None
        return DistributedConcurrencyPolicy(
            ctx.name,
            params,
            strategy,
            prefix,
            lp,
            aggregate="median" if aggregate is MISSING else aggregate,
            allocation=ALLOCATIONS[0] if allocation is MISSING else allocation,
            coordinator_prefix=coord,
            heartbeat_ms=period,
            on_outage="fail-closed" if outage is MISSING else outage,
            handoff=flags["handoff"],
            eager_handoff=flags["eagerHandoff"],
            min_heartbeat_ms=max(1, period // 10) if min_beat is MISSING else min_beat,
        )


CONCURRENCY = _Admitter("concurrency", fleet=False)
DISTRIBUTED_CONCURRENCY = _Admitter("distributedConcurrency", fleet=True)
