"""Field checks shared by the kind modules. Each returns the clean value, or MISSING after reporting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError
from ...strategies import MAX_COST, parse_duration
from .._issues import MISSING, did_you_mean

if TYPE_CHECKING:
    from . import PolicyContext

__all__ = ["choice", "duration", "integer", "milliseconds", "number"]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def number(
    ctx: PolicyContext,
    spec: Any,
    field: str,
    *,
    minimum: float,
    exclusive: bool = False,
    maximum: float = MAX_COST,
) -> Any:
    """A finite number within ``(minimum | [minimum) .. maximum]``."""
    v = spec.get(field, MISSING)
    if v is MISSING:
        return v
    low_ok = _is_number(v) and (v > minimum if exclusive else v >= minimum)
    if not low_ok or v > maximum:
        bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        ctx.error(
            field,
            "is out of range" if _is_number(v) else "must be a number",
            v,
            f"a number {bound} and <= {maximum:.0f}",
        )
        return MISSING
    return v


def integer(ctx: PolicyContext, spec: Any, field: str, lo: int, hi: int, hint: str = "") -> Any:
    """A whole number in ``lo..hi``."""
    v = spec.get(field, MISSING)
    if v is MISSING:
        return v
    if not _is_number(v) or not float(v).is_integer() or not lo <= v <= hi:
        problem = "is out of range" if _is_number(v) and float(v).is_integer() else "must be an integer"
        ctx.error(field, problem, v, f"an integer from {lo} to {hi}{hint}")
        return MISSING
    return int(v)


def duration(ctx: PolicyContext, spec: Any, field: str) -> Any:
    """A duration: a number of ms or a string such as ``"30s"`` (units ms, s, m, h, d); at least 1 ms."""
    v = spec.get(field, MISSING)
    if v is MISSING:
        return v
    allowed = 'a duration of at least 1 ms: a number of ms or "500ms", "30s", "1m", "1h", "1d"'
    try:
        ms = parse_duration(v, field)
    except ConfigError:
        ctx.error(field, "is not a duration", v, allowed)
        return MISSING
    if ms < 1:
        ctx.error(field, "is shorter than 1 ms (times are whole milliseconds)", v, allowed)
        return MISSING
    return v


def milliseconds(ctx: PolicyContext, spec: Any, field: str, *, period: bool = True) -> Any:
    """A plain number of milliseconds (no unit strings: those belong to ``period``), at least 1.
    ``period=False`` where no ``period`` field exists (kind blocks)."""
    v = spec.get(field, MISSING)
    if v is MISSING:
        return v
    if isinstance(v, str):
        ctx.error(
            field,
            f'is a number of milliseconds; write durations with units as "period: {v}"'
            if period
            else "is a number of milliseconds (no unit strings here)",
            v,
            "a number of ms >= 1",
        )
        return MISSING
    if not _is_number(v) or v < 1:
        ctx.error(field, "must be a number of milliseconds", v, "a number of ms >= 1")
        return MISSING
    return v


def choice(ctx: PolicyContext, spec: Any, field: str, options: Sequence[str]) -> Any:
    """One of ``options`` (a misspelling gets a suggestion)."""
    v = spec.get(field, MISSING)
    if v is MISSING:
        return v
    if not isinstance(v, str) or v not in options:
        hint = did_you_mean(v, options) if isinstance(v, str) else ""
        ctx.error(field, f"is not a known {field}", v, ", ".join(options), hint)
        return MISSING
    return v
