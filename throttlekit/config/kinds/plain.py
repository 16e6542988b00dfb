"""The plain rate policy: ``strategy`` plus that strategy's fields (served by Check/CheckMany/Peek/Forecast).

Stricter than upstream: a field that the chosen strategy does not use is an error (upstream ignores
it), two window fields at once are an error (upstream silently prefers ``period``), windows are at least
1 ms, and every value is checked before the strategy is built (the strategy's own rules, such as a
rate that must stay finite and at most 100000 sliding-window buckets, then apply as the floor).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError
from ...strategies import CADENCES, MAX_BUCKETS, strategy_from_options
from .._issues import MISSING
from .._model import Policy, RatePolicy
from . import _fields as f

if TYPE_CHECKING:
    from . import PolicyContext

__all__ = ["KIND", "STRATEGIES"]


@dataclass(frozen=True)
class _Shape:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    windows: tuple[str, ...]  # the accepted spellings of the window; exactly one is required


#: Strategy name -> the fields it takes (camelCase, as upstream configs spell them).
STRATEGIES: dict[str, _Shape] = {
    "gcra": _Shape(("limit",), ("burst",), ("period", "periodMs", "windowMs")),
    "tokenBucket": _Shape(("capacity", "refillPerSec"), (), ()),
    "fixedWindow": _Shape(("limit",), (), ("period", "windowMs")),
    "slidingWindow": _Shape(("limit",), ("buckets",), ("period", "windowMs")),
    "slidingWindowLog": _Shape(("limit",), (), ("period", "windowMs")),
    "quota": _Shape(
        ("limit", "resetCadence"),
        ("anchor", "offsetMinutes", "weekStartsOn", "buckets"),
        ("period", "periodMs"),
    ),
}
_COMMON = ("strategy", "prefix")
_ALL_FIELDS = frozenset(
    {*_COMMON, *(n for s in STRATEGIES.values() for n in (*s.required, *s.optional, *s.windows))}
)


def _check_values(ctx: PolicyContext, spec: Mapping[str, Any]) -> None:
    f.number(ctx, spec, "limit", minimum=0, exclusive=True)
    f.number(ctx, spec, "capacity", minimum=0, exclusive=True)
    f.number(ctx, spec, "refillPerSec", minimum=0, exclusive=True)
    f.number(ctx, spec, "burst", minimum=1)
    f.integer(ctx, spec, "buckets", 1, MAX_BUCKETS)
    f.duration(ctx, spec, "period")
    f.milliseconds(ctx, spec, "windowMs")
    f.milliseconds(ctx, spec, "periodMs")
    f.choice(ctx, spec, "resetCadence", CADENCES)
    f.integer(ctx, spec, "offsetMinutes", -840, 840, " (minutes east of UTC)")
    f.integer(ctx, spec, "weekStartsOn", 0, 6, " (0 = Sunday .. 6 = Saturday)")
    f.integer(ctx, spec, "anchor", 0, 2**53, " (epoch ms)")


def _field_of(message: str) -> str:
    """``"gcra.limit must be ..."`` -> ``"limit"`` (the engine names ``<strategy>.<field>``)."""
    head = message.split(" ", 1)[0].rstrip(":")
    return head.split(".", 1)[1] if "." in head else ""


class _Plain:
    name: str = "rate"
    block: str | None = None
    keys: frozenset[str] = _ALL_FIELDS

    def accepted_keys(self, spec: Mapping[str, Any]) -> frozenset[str]:
        shape = STRATEGIES.get(spec.get("strategy"))  # type: ignore[arg-type]
        if shape is None:
            return _ALL_FIELDS
        return frozenset((*_COMMON, *shape.required, *shape.optional, *shape.windows))

    def build(self, ctx: PolicyContext, spec: Mapping[str, Any]) -> Policy | None:
        before = len(ctx.issues.items)
        kind = spec.get("strategy", MISSING)
        if kind is MISSING:
            ctx.error(
                "strategy",
                "required for a rate policy (or declare a kind block)",
                allowed=", ".join(STRATEGIES),
            )
            return None
        if f.choice(ctx, spec, "strategy", tuple(STRATEGIES)) is MISSING:
            return None
        shape = STRATEGIES[kind]
        fields = (*_COMMON, *shape.required, *shape.optional, *shape.windows)
        for key in spec:
            if key in _ALL_FIELDS and key not in fields:
                ctx.error(str(key), f"does not apply to strategy {kind}", spec[key], ", ".join(fields))
        for key in shape.required:
            if key not in spec:
                ctx.error(key, f"required for strategy {kind}", allowed=", ".join(fields))
        windows = [w for w in shape.windows if w in spec]
        cadence = spec.get("resetCadence")
        needs_window = bool(shape.windows) and (kind != "quota" or cadence in ("fixed", "rolling"))
        if len(windows) > 1:
            ctx.error(
                windows[1],
                f"conflicts with {windows[0]}: give the window once",
                spec[windows[1]],
                " or ".join(shape.windows),
            )
        elif needs_window and not windows:
            ctx.error(
                "period",
                f"required for strategy {kind}"
                + (f" with resetCadence {cadence}" if kind == "quota" else ""),
                allowed=" or ".join(shape.windows),
            )
        elif kind == "quota" and windows and not needs_window:
            ctx.error(
                windows[0], f"only applies to resetCadence fixed or rolling, not {cadence}", spec[windows[0]]
            )
        if kind == "quota" and "buckets" in spec and cadence != "rolling":
            ctx.error("buckets", f"only applies to resetCadence rolling, not {cadence}", spec["buckets"])
        if kind == "quota" and "anchor" in spec and cadence != "fixed":
            ctx.error("anchor", f"only applies to resetCadence fixed, not {cadence}", spec["anchor"])
        _check_values(ctx, spec)
        prefix = ctx.prefix(spec)
        if len(ctx.issues.items) > before:
            return None
        options = {k: v for k, v in spec.items() if k not in _COMMON}
        try:
            strategy = strategy_from_options(kind, options)
        except ConfigError as exc:
            ctx.error(_field_of(str(exc)), str(exc), options, "values whose derived rate stays finite")
            return None
        return RatePolicy(ctx.name, strategy, prefix)


KIND = _Plain()
