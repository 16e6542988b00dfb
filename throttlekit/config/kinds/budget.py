"""Cost meters served by Debit: ``tokenBudget:`` (per process) and ``fleetBudget:`` (shared store).

::

    completions:
      tokenBudget: { budget: 100000, windowMs: 60000 }          # maxKeys default 100000
    fleet-completions:
      fleetBudget: { budget: 100000, windowMs: 60000, prefix: llm }

``budget`` must be at least 1, ``windowMs`` is a plain number of milliseconds >= 1, unknown block keys
are errors (``docs/server.md``, "Kind blocks").
The values are checked by the meter's own rules (:func:`throttlekit.meters.token_budget_params`).
A fleet budget's prefix may be given in the block or at the policy level, not both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ... import _validate as v
from ..._errors import ConfigError
from ...meters import token_budget_params
from .._issues import MISSING
from .._model import FleetBudgetPolicy, Policy, TokenBudgetPolicy
from . import _fields as f
from ._block import block_context, block_mapping

if TYPE_CHECKING:
    from . import PolicyContext

__all__ = ["FLEET_BUDGET", "TOKEN_BUDGET"]

#: Most live per-key meters a tokenBudget may hold.
MAX_METER_KEYS = 10_000_000


class _Budget:
    name: str = "cost meter"

    def __init__(self, block: str, fleet: bool) -> None:
        self.block: str | None = block
        self.fleet = fleet
        self.keys: frozenset[str] = frozenset({"prefix"} if fleet else ())
        self.fields = ("budget", "windowMs", "maxKeys", *(("prefix",) if fleet else ()))

    def accepted_keys(self, spec: Mapping[str, Any]) -> frozenset[str]:
        return self.keys

    def build(self, ctx: PolicyContext, spec: Mapping[str, Any]) -> Policy | None:
        assert self.block is not None
        before = len(ctx.issues.items)
        block = block_mapping(ctx, spec, self.block, self.fields)
        if block is MISSING:
            return None
        sub = block_context(ctx, self.block)
        reported: set[str] = set()
        if "budget" not in block or "windowMs" not in block:
            sub.error(
                "",
                "both `budget` and `windowMs` are required",
                allowed="budget, windowMs, " + ", ".join(self.fields[2:]),
            )
            reported.update(k for k in ("budget", "windowMs") if k not in block)
        if f.milliseconds(sub, block, "windowMs", period=False) is MISSING:
            reported.add("windowMs")
        max_keys = f.check(sub, block, "maxKeys", v.integer, 1, MAX_METER_KEYS)
        prefix = ""
        if self.fleet:
            if "prefix" in block and "prefix" in spec:
                ctx.error("prefix", "conflicts with fleetBudget.prefix: give the prefix once", spec["prefix"])
            prefix = sub.prefix(block) if "prefix" in block else ctx.prefix(spec)
        try:
            budget, window = token_budget_params(block.get("budget"), block.get("windowMs"))
        except ConfigError as exc:
            sub.report(exc, skip=reported)
            return None
        if len(ctx.issues.items) > before:
            return None
        keys = 100_000 if max_keys is MISSING else max_keys
        if self.fleet:
            return FleetBudgetPolicy(ctx.name, budget, window, keys, prefix)
        return TokenBudgetPolicy(ctx.name, budget, window, keys)


TOKEN_BUDGET = _Budget("tokenBudget", fleet=False)
FLEET_BUDGET = _Budget("fleetBudget", fleet=True)
