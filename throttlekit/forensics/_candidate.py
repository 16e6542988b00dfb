"""The What-If candidate DSL: ``set``, ``scale`` and ``swap`` applied to a leaf policy's spec.

- ``set: {field: value}`` writes values;
- ``scale: {field: factor}`` multiplies a numeric field by a finite factor, exactly (no rounding);
- ``swap: {strategy: <name>, ...fields}`` replaces the strategy and its fields (the policy's ``prefix``
  is kept; ``set``/``scale`` then apply on top of the swapped spec).

Refused with a :class:`Refusal` (``reason`` from the replay taxonomy): a field that is not a rate-policy
field, a field targeted by two ops, ``scale`` on a base that is not a finite number or by a factor that
is not one, ``swap`` without ``strategy``, targeting ``windowMs``/``periodMs`` while ``period`` is set
(``period`` would win and the change would silently do nothing), for gcra targeting ``windowMs`` while
``periodMs`` is set (``candidate-invalid``); a result this server's config checks refuse
(``unrebuildable-strategy``, with the loader's messages).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..config._forensics import CandidateDelta
from ..config._loader import build_policy
from ..config._model import RatePolicy

__all__ = ["LIMITER_FIELDS", "Refusal", "apply_candidate", "describe_candidate"]

#: The fields a candidate may target (a rate policy's fields).
LIMITER_FIELDS = (
    "strategy",
    "limit",
    "period",
    "burst",
    "capacity",
    "refillPerSec",
    "windowMs",
    "buckets",
    "resetCadence",
    "offsetMinutes",
    "weekStartsOn",
    "anchor",
    "periodMs",
    "prefix",
)


class Refusal(Exception):
    """A what-if that cannot be run: ``reason`` (taxonomy) and ``message`` (why)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def describe_candidate(delta: CandidateDelta) -> str:
    """A short label: ``swap slidingWindow, limit=200, burst*1.5``."""
    parts = []
    if delta.swap:
        parts.append(f"swap {delta.swap.get('strategy')}")
        parts += [f"{k}={v}" for k, v in delta.swap.items() if k != "strategy"]
    parts += [f"{k}={v}" for k, v in delta.set.items()]
    parts += [f"{k}*{v}" for k, v in delta.scale.items()]
    return ", ".join(parts)


def apply_candidate(
    name: str, base: Mapping[str, Any], delta: CandidateDelta, default_prefix: str | None = None
) -> tuple[RatePolicy, dict[str, Any], str]:
    """``(policy, spec, comparability)`` of the candidate; comparability is ``comparable`` (same
    strategy) or ``cross-strategy``. Raises :class:`Refusal`."""
    targeted: dict[str, str] = {}
    for op, fields in (("set", delta.set), ("scale", delta.scale), ("swap", delta.swap)):
        for field in fields:
            if op == "swap" and field == "strategy":
                continue
            if field not in LIMITER_FIELDS:
                raise Refusal(
                    "candidate-invalid",
                    f"{op}.{field}: not a rate-policy field (allowed: {', '.join(LIMITER_FIELDS)})",
                )
            if field in targeted:
                raise Refusal(
                    "candidate-invalid",
                    f"{field} is targeted by both {targeted[field]} and {op} (one op per field)",
                )
            targeted[field] = op
    if delta.swap and "strategy" not in delta.swap:
        raise Refusal("candidate-invalid", "swap needs `strategy` (the strategy to swap to)")
    spec = dict(base)
    if delta.swap:
        spec = {k: v for k, v in base.items() if k == "prefix"}
        spec.update(delta.swap)
    for field, value in delta.set.items():
        spec[field] = value
    for field, factor in delta.scale.items():
        if not _number(factor):
            raise Refusal(
                "candidate-invalid", f"scale.{field}: the factor must be a finite number, got {factor!r}"
            )
        if not _number(spec.get(field)):
            raise Refusal(
                "candidate-invalid",
                f"scale.{field}: needs a finite numeric base, the policy has {spec.get(field)!r}",
            )
        spec[field] = spec[field] * factor
    for field in ("windowMs", "periodMs"):
        if field in targeted and "period" in spec and targeted.get("period") is None:
            raise Refusal(
                "candidate-invalid",
                f"{field} is targeted while `period` is set: period wins, the change would do nothing",
            )
    if spec.get("strategy") == "gcra" and "windowMs" in targeted and "periodMs" in spec:
        raise Refusal(
            "candidate-invalid", "gcra: windowMs is targeted while `periodMs` is set (periodMs wins)"
        )
    policy, problems = build_policy(name, spec, default_prefix)
    if not isinstance(policy, RatePolicy):
        raise Refusal("unrebuildable-strategy", "; ".join(problems) or "the candidate is not a rate policy")
    comparability = "comparable" if spec.get("strategy") == base.get("strategy") else "cross-strategy"
    return policy, spec, comparability
