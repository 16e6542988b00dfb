"""The validators every parameter goes through, and the bounds they enforce.

Strategies, meters, the two-tier limiter and the policy-file kinds all check values here, so a rule
and its message exist once. Each validator returns the clean value or raises
:class:`~throttlekit.ConfigError` carrying ``field``, ``value``, ``problem`` and ``allowed``; a
:class:`Checks` runs several and raises one error holding all of them (``errors``), which the config
loader turns into one issue each without reading message text.

The bounds come from what the Lua and the stores can represent (docs/server.md, "Bounds"): Lua numbers
are doubles, so counts and instants must stay exact integers below 2^53; ``PX``/``PEXPIRE`` take an
integer number of ms in a signed 64-bit range with ``now + ttl`` not overflowing, and Redis formats a
Lua number with ``%.17g``, which stops being a plain integer at 1e17.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ._errors import NO_VALUE, ConfigError

__all__ = [
    "MAX_BUCKETS",
    "MAX_DURATION_MS",
    "MAX_NAME",
    "MAX_SAFE_INTEGER",
    "Checks",
    "choice",
    "cost",
    "did_you_mean",
    "duration",
    "integer",
    "name",
    "nearest",
    "number",
    "span",
]

#: Largest count, limit, capacity, cost or rate: JavaScript's ``Number.MAX_SAFE_INTEGER`` (2^53 - 1),
#: the largest integer a double (a Lua number) holds exactly.
MAX_SAFE_INTEGER = 9007199254740991
#: Longest duration (window, period, TTL, emission span), in ms: about 31,700 years. Every instant the
#: Lua computes is at most ``now + 2 * duration`` (a sliding window's reset is one window plus one
#: bucket ahead), which stays an exact integer below 2^53 for any ``now`` before the year 10000, far
#: inside a signed 64-bit ``PX``/``PEXPIRE`` and below the 1e17 where ``%.17g`` turns to exponents.
MAX_DURATION_MS = 10**15
#: Most sub-buckets of a sliding window or rolling quota. Every decision reads the whole ring (one hash
#: field per bucket): at 100,000 buckets one request took 0.3-0.6 s (docs/stores.md, "Worst single
#: request"); at 1,000 it takes milliseconds.
MAX_BUCKETS = 1_000

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d{1,30}(?:\.\d{1,30})?)\s*(ms|s|m|h|d)?\s*$")
DURATION_HINT = 'a number of ms or "500ms", "30s", "1m", "1h", "1d"'
_DURATION_ALLOWED = f"a duration up to {MAX_DURATION_MS} ms (about 31,700 years): {DURATION_HINT}"
_WHY_SAFE = " (2^53 - 1: larger integers are not exact in Lua)"

Number = int | float
T = TypeVar("T")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def whole(v: float) -> Number:
    """Whole numbers as int (exact in Lua and on the wire), fractions as float."""
    return int(v) if float(v).is_integer() and abs(v) <= MAX_SAFE_INTEGER else v


def number(
    field: str,
    v: Any,
    *,
    low: float = 0,
    low_open: bool = True,
    high: float = MAX_SAFE_INTEGER,
) -> Number:
    """A finite number in ``(low | [low) .. high]`` (default: > 0 and <= 2^53 - 1)."""
    bound = f"> {low:g}" if low_open else f">= {low:g}"
    top = f"{high:.0f}" if float(high).is_integer() else f"{high:g}"
    top += _WHY_SAFE if high == MAX_SAFE_INTEGER else ""
    allowed = f"a number {bound} and <= {top}"
    if not _is_number(v) or not math.isfinite(v):
        problem = "must be a finite number" if _is_number(v) else "must be a number"
        raise ConfigError(field=field, value=v, problem=problem, allowed=allowed)
    if (v <= low if low_open else v < low) or v > high:
        raise ConfigError(field=field, value=v, problem="is out of range", allowed=allowed)
    return whole(v)


def integer(field: str, v: Any, lo: int, hi: int, note: str = "") -> int:
    """A whole number in ``lo..hi`` (``note`` explains the unit, e.g. ``" (0 = Sunday .. 6 = Saturday)"``)."""
    allowed = f"an integer from {lo} to {hi}{note}"
    if not _is_number(v) or not math.isfinite(v) or not float(v).is_integer():
        raise ConfigError(field=field, value=v, problem="must be an integer", allowed=allowed)
    if not lo <= v <= hi:
        raise ConfigError(field=field, value=v, problem="is out of range", allowed=allowed)
    return int(v)


def duration(field: str, v: Any, *, strings: bool = True) -> Number:
    """A duration in ms from a number (ms) or, when ``strings``, ``"<number><ms|s|m|h|d>"``; > 0 and at
    most :data:`MAX_DURATION_MS`."""
    if isinstance(v, str) and strings:
        match = _DURATION.match(v)
        if match is None:
            raise ConfigError(field=field, value=v, problem="is not a duration", allowed=_DURATION_ALLOWED)
        ms = float(match.group(1)) * _UNITS[match.group(2) or "ms"]
    elif _is_number(v):
        ms = float(v)
    else:
        allowed = _DURATION_ALLOWED if strings else f"a number of ms up to {MAX_DURATION_MS}"
        raise ConfigError(field=field, value=v, problem="is not a duration", allowed=allowed)
    if not math.isfinite(ms) or ms <= 0 or ms > MAX_DURATION_MS:
        problem = "is not a positive duration" if not ms > 0 else "is too long"
        if ms > MAX_DURATION_MS:
            problem += (
                " (instants it implies would not be exact integers in Lua, nor storable as a Redis TTL)"
            )
        raise ConfigError(field=field, value=v, problem=problem, allowed=_DURATION_ALLOWED)
    return whole(ms)


#: A far-future instant (year 2286) dividing windows: a window so short that it overflows is refused.
_FAR_NOW = 1e13


def span(field: str, what: str, ms: float, *, divides_now: bool = False) -> float:
    """A duration derived from several fields (``what`` says which): positive, finite and at most
    :data:`MAX_DURATION_MS`, since the Lua stores it as a TTL or adds it to ``now``. ``divides_now``:
    the Lua divides instants by it (a window or bucket width), so ``now / ms`` must stay finite."""
    short = divides_now and not (ms > 0 and math.isfinite(_FAR_NOW / ms))
    if short or not math.isfinite(ms) or ms <= 0 or ms > MAX_DURATION_MS:
        raise ConfigError(
            field=field,
            problem=f"{'makes' if field else 'gives'} {what} {ms:g} ms, {'too long' if ms > MAX_DURATION_MS else 'too short'}",
            allowed=f"values that keep it above 0 and at most {MAX_DURATION_MS} ms (about 31,700 years)",
        )
    return ms


def cost(v: Any, field: str = "cost") -> Number:
    """A request cost: finite, > 0 and <= 2^53 - 1 (fractions allowed for rate limiters)."""
    if v.__class__ is int and 0 < v <= MAX_SAFE_INTEGER:
        return v
    return number(field, v)


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt word (difflib ratio >= 0.6, else a case-insensitive match)."""
    pool = list(candidates)
    match = difflib.get_close_matches(word[:200], pool, n=1, cutoff=0.6)
    if not match:
        match = [c for c in pool if c.lower() == word.lower()]
    return match[0] if match else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``'did you mean "x"?'`` for the nearest candidate, or ``""``."""
    guess = nearest(word, candidates)
    return f'did you mean "{guess}"?' if guess else ""


def choice(field: str, v: Any, options: Sequence[str]) -> str:
    """One of ``options`` (a misspelling gets a suggestion in ``hint``)."""
    if not isinstance(v, str) or v not in options:
        raise ConfigError(
            field=field,
            value=v,
            problem=f"is not a known {field}",
            allowed=", ".join(options),
            hint=did_you_mean(v, options) if isinstance(v, str) else "",
        )
    return v


#: Longest name (a region, a node id), in characters.
MAX_NAME = 256


def name(field: str, v: Any) -> str:
    """An identity such as a region: a non-blank string of at most :data:`MAX_NAME` characters without
    control characters (it appears in logs and in store keys)."""
    allowed = f"1 to {MAX_NAME} characters, no control characters"
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(field=field, value=v, problem="must be a non-empty string", allowed=allowed)
    if len(v) > MAX_NAME:
        raise ConfigError(field=field, value=v, problem=f"is {len(v)} characters long", allowed=allowed)
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in v):
        raise ConfigError(field=field, value=v, problem="contains a control character", allowed=allowed)
    return v


class Checks:
    """Runs validators and keeps every failure, so one call reports all bad fields at once.

    ``c(fn, *args)`` returns ``fn(*args)``, or None after recording its error (and marking ``ok``
    False); :meth:`done` raises one :class:`ConfigError` whose ``errors`` are all of them, each with
    ``scope`` set (``"gcra"`` in ``"gcra.limit is out of range ..."``).
    """

    def __init__(self, scope: str = "") -> None:
        self.scope = scope
        self.errors: list[ConfigError] = []

    @property
    def ok(self) -> bool:
        return not self.errors

    def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            self.fail(exc)
            return None

    def fail(self, exc: ConfigError) -> None:
        """Record an error raised elsewhere (or built here)."""
        for e in exc.errors:
            if self.scope and not e.scope:
                e.scope = self.scope
            self.errors.append(e)

    def error(self, field: str, problem: str, value: Any = NO_VALUE, allowed: str = "") -> None:
        """Record a rule broken by a combination of fields."""
        self.fail(ConfigError(field=field, value=value, problem=problem, allowed=allowed))

    def done(self) -> None:
        """Raise every recorded error as one (the first names the field; ``errors`` holds all)."""
        if self.errors:
            raise ConfigError.group(self.errors)
