"""``twoTier:`` on a rate policy: an in-process tier in front of the shared store, served by Check.

::

    leased:
      strategy: fixedWindow
      limit: 1000
      period: 1m
      twoTier: { mode: leased, batch: 50, windowCoupled: true }

The strategy fields are the plain policy's (they define L2). Block fields: ``mode`` (``strict``,
``cached-deny``, ``leased``; default ``leased``), and for leased only: ``batch`` (required, an integer
>= 1), ``lowWater`` (an integer below ``batch``, default 0 = off), ``windowCoupled`` (default false, as the
upstream core), ``returnIdleAfterMs`` (ms). Stricter than upstream: leased fields on another mode are
errors, ``batch`` and ``lowWater`` are whole units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...strategies import MAX_COST
from ...two_tier import MODES
from .._issues import MISSING
from .._model import Policy, RatePolicy, TwoTierPolicy
from . import _fields as f
from . import plain
from ._block import block_context, block_mapping

if TYPE_CHECKING:
    from . import PolicyContext

__all__ = ["KIND"]

_FIELDS = ("mode", "batch", "lowWater", "windowCoupled", "returnIdleAfterMs")
_LEASED = _FIELDS[1:]


class _TwoTier:
    name: str = "twoTier"
    block: str | None = "twoTier"
    keys: frozenset[str] = plain.KIND.keys

    def accepted_keys(self, spec: Mapping[str, Any]) -> frozenset[str]:
        return plain.KIND.accepted_keys(spec)

    def build(self, ctx: PolicyContext, spec: Mapping[str, Any]) -> Policy | None:
        before = len(ctx.issues.items)
        rate = plain.KIND.build(ctx, {k: v for k, v in spec.items() if k != "twoTier"})
        block = block_mapping(ctx, spec, "twoTier", _FIELDS)
        if block is MISSING:
            return None
        sub = block_context(ctx, "twoTier")
        mode = f.choice(sub, block, "mode", MODES)
        if mode is MISSING and "mode" in block:
            return None  # reported; the other fields depend on the mode
        mode = "leased" if mode is MISSING else mode
        if mode != "leased":
            for key in _LEASED:
                if key in block:
                    sub.error(key, f"only applies to mode leased, not {mode}", block[key])
        batch = f.integer(sub, block, "batch", 1, MAX_COST)
        low = f.integer(sub, block, "lowWater", 0, MAX_COST, " (0 = no proactive refill)")
        idle = f.milliseconds(sub, block, "returnIdleAfterMs", period=False)
        coupled = block.get("windowCoupled", False)
        if not isinstance(coupled, bool):
            sub.error("windowCoupled", "must be true or false", coupled, "true, false")
        if mode == "leased" and "batch" not in block:
            sub.error("batch", "required for mode leased (units leased from the shared store per call)",
                      allowed="an integer >= 1")  # fmt: skip
        if batch is not MISSING and low is not MISSING and low >= batch:
            sub.error("lowWater", f"must be below batch ({batch}): a refill would start on every spend", low)
        if isinstance(rate, RatePolicy) and batch is not MISSING and batch > rate.strategy.limit_value:
            sub.error(
                "batch",
                f"exceeds the policy's limit ({rate.strategy.limit_value:g}): every lease would be refused "
                "(a lease is one all-or-nothing check of `batch` units)",
                batch,
                f"an integer from 1 to {rate.strategy.limit_value:g}",
            )
        if len(ctx.issues.items) > before or not isinstance(rate, RatePolicy):
            return None
        return TwoTierPolicy(
            ctx.name,
            rate.strategy,
            rate.prefix,
            mode,
            1 if batch is MISSING else batch,
            0 if low is MISSING else low,
            coupled,
            None if idle is MISSING else idle,
        )


KIND = _TwoTier()
