"""``twoTier:`` on a rate policy: an in-process tier in front of the shared store, served by Check.

::

    leased:
      strategy: fixedWindow
      limit: 1000
      period: 1m
      twoTier: { mode: leased, batch: 50, windowCoupled: true }

The strategy fields are the plain policy's (they define L2). Block fields: ``mode`` (``strict``,
``cached-deny``, ``leased``; default ``leased``), and for leased only: ``batch`` (required, an integer
>= 1), ``lowWater`` (an integer below ``batch``, default 0 = off), ``windowCoupled`` (default false),
``returnIdleAfterMs`` (ms). Leased fields on another mode are errors; ``batch`` and ``lowWater`` are
whole units. The values are checked by the limiter's own rules
(:func:`throttlekit.two_tier.lease_options`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError
from ...two_tier import MODES, lease_options
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
        mode = block.get("mode", "leased")
        reported: set[str] = set()
        if mode in MODES and mode != "leased":
            for key in _LEASED:
                if key in block:
                    sub.error(key, f"only applies to mode leased, not {mode}", block[key])
                    reported.add(key)
        if f.milliseconds(sub, block, "returnIdleAfterMs", period=False) is MISSING:
            reported.add("returnIdleAfterMs")
        limit = rate.strategy.limit_value if isinstance(rate, RatePolicy) else math.inf
        try:
            mode, batch, low, coupled, idle = lease_options(
                mode,
                block.get("batch"),
                block.get("lowWater", 0),
                block.get("windowCoupled", False),
                None if "returnIdleAfterMs" in reported else block.get("returnIdleAfterMs"),
                limit,
            )
        except ConfigError as exc:
            sub.report(exc, skip=reported)
            return None
        if len(ctx.issues.items) > before or not isinstance(rate, RatePolicy):
            return None
        return TwoTierPolicy(ctx.name, rate.strategy, rate.prefix, mode, batch, low, coupled, idle)


KIND = _TwoTier()
