"""``federated:`` on a rate policy: one per-window budget shared by every region, served by Check.

::

    global-api:
      strategy: fixedWindow
      limit: 10000
      period: 1m
      federated: { batch: 16 }

The strategy fields are the plain policy's; the strategy must have a fixed window: ``fixedWindow``,
``slidingWindow`` (federated as fixed windows of its length) or a ``quota`` with ``resetCadence: fixed``
(its ``anchor`` aligns the windows). The budget is the strategy's ``limit`` (floored, at least 1). Block
fields: ``batch`` (units leased per coordinator round trip, an integer >= 1, default 16), ``region`` (this
instance's region; default the server's ``--region``), ``prefix`` (the coordinator's key prefix, default
``tk:fed``), ``onCoordinatorOutage`` (``fail-closed``, the default, or ``regional-only``),
``coordinatorHealthCheckMs`` (how often ``regional-only`` probes an unhealthy coordinator, ms, default
5000), ``budgets`` (key -> its own units per window), and for the regional escrow (used when the server
has a regional store, ``--regional-store``): ``escrowBatch`` (units the region leases from the coordinator
per round trip, default 4 x batch) and ``escrowPrefix`` (default ``tk:l2``). The store must be Redis or
Postgres (checked when the server binds the policy to its store).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ... import _validate as v
from ..._errors import ConfigError
from ...federation import (
    DEFAULT_BATCH,
    DEFAULT_ESCROW_PREFIX,
    DEFAULT_HEALTH_CHECK_MS,
    DEFAULT_PREFIX,
    OUTAGE_MODES,
)
from ...strategies import FixedWindow, Quota, SlidingWindow
from .._issues import MISSING
from .._model import FederatedPolicy, Policy, RatePolicy
from . import _fields as f
from . import plain
from ._block import block_context, block_mapping

if TYPE_CHECKING:
    from . import PolicyContext

__all__ = ["KIND", "OUTAGE_MODES"]

_FIELDS = (
    "batch",
    "region",
    "prefix",
    "onCoordinatorOutage",
    "coordinatorHealthCheckMs",
    "budgets",
    "escrowBatch",
    "escrowPrefix",
)
_WINDOWED = "fixedWindow / slidingWindow / a fixed-cadence quota"


def _rejection(kind: str, cadence: Any = None) -> str:
    why = {
        "gcra": "a GCRA has no window: its budget refills continuously",
        "tokenBucket": "a token bucket has no window: it refills continuously",
        "slidingWindowLog": "an exact log has no fixed window to lease budget for",
        "quota": f"resetCadence {cadence} is not a fixed window (use resetCadence fixed)",
    }.get(kind, "it has no fixed window")
    return (
        f"requires a window-coupled strategy with a fixed window ({_WINDOWED}); "
        f'"{kind}" cannot be federated ({why})'
    )


class _Federated:
    name: str = "federated"
    block: str | None = "federated"
    keys: frozenset[str] = plain.KIND.keys

    def accepted_keys(self, spec: Mapping[str, Any]) -> frozenset[str]:
        return plain.KIND.accepted_keys(spec)

    def build(self, ctx: PolicyContext, spec: Mapping[str, Any]) -> Policy | None:
        before = len(ctx.issues.items)
        kind, cadence = spec.get("strategy"), spec.get("resetCadence")
        windowed = kind in ("fixedWindow", "slidingWindow") or (kind == "quota" and cadence == "fixed")
        if isinstance(kind, str) and kind in plain.STRATEGIES and not windowed:
            ctx.error("federated", _rejection(kind, cadence), kind, _WINDOWED)
            return None
        rate = plain.KIND.build(ctx, {k: x for k, x in spec.items() if k != "federated"})
        block = block_mapping(ctx, spec, "federated", _FIELDS)
        if block is MISSING:
            return None
        sub = block_context(ctx, "federated")
        batch = f.check(sub, block, "batch", v.integer, 1, v.MAX_SAFE_INTEGER)
        region = f.check(sub, block, "region", v.name)
        outage = f.check(sub, block, "onCoordinatorOutage", v.choice, OUTAGE_MODES)
        health = f.check(sub, block, "coordinatorHealthCheckMs", v.duration)
        escrow_batch = f.check(sub, block, "escrowBatch", v.integer, 1, v.MAX_SAFE_INTEGER)
        coord_prefix = DEFAULT_PREFIX
        if "prefix" in block:
            coord_prefix = sub.prefix(block)
        escrow_prefix = DEFAULT_ESCROW_PREFIX
        if "escrowPrefix" in block:
            if isinstance(block["escrowPrefix"], str):
                escrow_prefix = block["escrowPrefix"]
            else:
                sub.error("escrowPrefix", "must be a string", block["escrowPrefix"], "any string, e.g. tk:l2")
        budgets = self._budgets(sub, block.get("budgets", MISSING))
        if len(ctx.issues.items) > before or not isinstance(rate, RatePolicy):
            return None
        strategy = rate.strategy
        anchor = 0
        if isinstance(strategy, (FixedWindow, SlidingWindow)):
            window = strategy.window_ms
        elif isinstance(strategy, Quota):
            window, anchor = strategy.period_ms, strategy.anchor
        else:  # pragma: no cover - rejected above
            return None
        budget = math.floor(strategy.limit_value)
        if budget < 1:
            ctx.error(
                "limit",
                "a federated budget is whole units: the limit must be at least 1",
                strategy.limit_value,
            )
            return None
        return FederatedPolicy(
            ctx.name,
            strategy,
            rate.prefix,
            window,
            budget,
            anchor,
            DEFAULT_BATCH if batch is MISSING else batch,
            None if region is MISSING else region,
            coord_prefix,
            budgets,
            "fail-closed" if outage is MISSING else outage,
            None if escrow_batch is MISSING else escrow_batch,
            escrow_prefix,
            DEFAULT_HEALTH_CHECK_MS if health is MISSING else health,
        )

    @staticmethod
    def _budgets(sub: PolicyContext, value: Any) -> dict[str, int]:
        if value is MISSING:
            return {}
        if not isinstance(value, Mapping):
            sub.error("budgets", "must be a mapping of key to units per window", value, "{acme: 500}")
            return {}
        out: dict[str, int] = {}
        for key, n in value.items():
            try:
                out[str(key)] = v.integer(f"budgets.{key}", n, 1, v.MAX_SAFE_INTEGER)
            except ConfigError as exc:
                sub.report(exc)
        return out


KIND = _Federated()
