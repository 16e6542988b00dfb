"""The plain rate policy: ``strategy`` plus that strategy's fields (served by Check/CheckMany/Peek/Forecast).

A field the chosen strategy does not use is an error, two window fields at once are an error, windows
are at least 1 ms, and ``windowMs``/``periodMs`` are plain numbers (``docs/server.md``, "Policy files",
lists where this is stricter than the upstream and why). The values themselves (ranges, bounds, derived
rates) are checked once, by the strategy the policy builds: its errors come back per field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ... import _validate as v
from ..._errors import ConfigError
from ...strategies import strategy_from_options
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


def _window_names(shape: _Shape, spec: Mapping[str, Any]) -> dict[str, str]:
    """The strategy's name for its window -> the spelling this policy used (errors name that key)."""
    used = next((w for w in shape.windows if w in spec), shape.windows[0] if shape.windows else "")
    return {w: used for w in ("period", "periodMs", "windowMs") if w != used}


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
        if f.check(ctx, spec, "strategy", v.choice, tuple(STRATEGIES)) is MISSING:
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
        reported = {k for k in spec if k in _ALL_FIELDS and k not in fields}
        reported.update(k for k in shape.required if k not in spec)
        if len(windows) > 1:
            ctx.error(
                windows[1],
                f"conflicts with {windows[0]}: give the window once",
                spec[windows[1]],
                " or ".join(shape.windows),
            )
            reported.update(windows)
        elif shape.windows and kind != "quota" and not windows:
            ctx.error("period", f"required for strategy {kind}", allowed=" or ".join(shape.windows))
            reported.add("period")
        cadence = spec.get("resetCadence")
        if kind == "quota" and "buckets" in spec and cadence != "rolling":
            ctx.error("buckets", f"only applies to resetCadence rolling, not {cadence}", spec["buckets"])
            reported.add("buckets")
        for w in ("windowMs", "periodMs"):
            if f.milliseconds(ctx, spec, w) is MISSING and w in spec:
                reported.add(w)
        if f.whole_ms(ctx, spec, "period") is MISSING and "period" in spec:
            reported.add("period")
        prefix = ctx.prefix(spec)
        options = {k: x for k, x in spec.items() if k in fields and k not in _COMMON and k not in reported}
        try:
            strategy = strategy_from_options(kind, options)
        except ConfigError as exc:
            ctx.report(exc, _window_names(shape, spec), reported)
            return None
        if len(ctx.issues.items) > before:
            return None
        return RatePolicy(ctx.name, strategy, prefix)


KIND = _Plain()
