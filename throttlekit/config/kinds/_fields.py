"""The rules only policy files have (on top of the validators the library objects share).

Each check returns the clean value, or MISSING after reporting through the policy's context. Value
rules (ranges, durations, bounds) live in :mod:`throttlekit._validate` and are applied by the object the
kind builds (a strategy, a meter, a two-tier limiter); what is here is the file format's own strictness:
``windowMs``-style fields are plain numbers of ms, and windows are at least 1 ms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError
from ..._validate import duration
from .._issues import MISSING

if TYPE_CHECKING:
    from . import PolicyContext

__all__ = ["check", "milliseconds", "whole_ms"]

_MS_ALLOWED = "a number of ms >= 1"


def check(ctx: PolicyContext, spec: Any, field: str, validator: Callable[..., Any], *args: Any) -> Any:
    """``validator(field, spec[field], *args)`` (a :mod:`throttlekit._validate` function), reporting its
    error; MISSING when the field is absent or bad."""
    v = spec.get(field, MISSING)
    if v is MISSING:
        return v
    try:
        return validator(field, v, *args)
    except ConfigError as exc:
        ctx.report(exc)
        return MISSING


def milliseconds(ctx: PolicyContext, spec: Any, field: str, *, period: bool = True) -> Any:
    """A plain number of milliseconds (no unit strings: those belong to ``period``), at least 1.
    ``period=False`` where no ``period`` field exists (kind blocks). The value itself (its upper bound)
    is left to the object the policy builds."""
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
            _MS_ALLOWED,
        )
        return MISSING
    return whole_ms(ctx, spec, field)


def whole_ms(ctx: PolicyContext, spec: Any, field: str) -> Any:
    """A duration field at least 1 ms long (times are whole milliseconds); a value the duration
    validator refuses is left for it to report."""
    v = spec.get(field, MISSING)
    try:
        ms = duration(field, v)
    except ConfigError:
        return v
    if ms < 1:
        ctx.error(field, "is shorter than 1 ms (times are whole milliseconds)", v, _MS_ALLOWED)
        return MISSING
    return v
