"""Strategy value objects: validated parameters that select a Lua transform and its ARGV.

A strategy computes nothing: it checks its parameters (the upstream's rules, plus finiteness guards
so no derived value can become infinite or zero), names the transforms that implement it, and lays out
their ARGV. Durations are milliseconds or strings such as ``"500ms"``, ``"30s"``, ``"1m"``, ``"1h"``,
``"1d"``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ._errors import ConfigError

__all__ = [
    "MAX_COST",
    "FixedWindow",
    "Gcra",
    "Quota",
    "SlidingWindow",
    "SlidingWindowLog",
    "Strategy",
    "TokenBucket",
    "parse_duration",
    "strategy_from_options",
]

#: Largest cost a request may carry (JavaScript's ``Number.MAX_SAFE_INTEGER``, as upstream).
MAX_COST = 9007199254740991
#: A far-future instant used to prove window arithmetic stays finite (year 2286).
_FAR_NOW = 1e13
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
MAX_BUCKETS = 100_000

Number = int | float


def parse_duration(value: Any, name: str = "period") -> float:
    """A duration in ms from a number (ms) or ``"<number><ms|s|m|h|d>"``; must be positive and finite."""
    if isinstance(value, bool):
        raise ConfigError(
            f'{name}: expected a duration such as "30s", "1m", "1h" or a number of ms, got {value!r}'
        )
    if isinstance(value, (int, float)):
        ms = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ConfigError(
                f'{name}: cannot parse "{value}" (use e.g. "500ms", "30s", "1m", "1h", "1d", or a number of ms)'
            )
        ms = float(match.group(1)) * _UNITS[match.group(2) or "ms"]
    else:
        raise ConfigError(f'{name}: expected a duration such as "30s" or a number of ms, got {value!r}')
    if not math.isfinite(ms) or ms <= 0:
        raise ConfigError(f"{name} must be a positive finite duration, got {value!r}")
    return _num(ms)


def _num(v: float) -> Number:
    """Keep whole numbers as int (exact in Lua and on the wire), fractions as float."""
    return int(v) if float(v).is_integer() and abs(v) < 2**53 else v


def _positive(name: str, v: Any) -> Number:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {v!r}")
    return _num(v)


def _at_least(name: str, v: Any, lo: float) -> Number:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo:
        raise ConfigError(f"{name} must be a finite number >= {lo:g}, got {v!r}")
    return _num(v)


def _integer(name: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer():
        raise ConfigError(f"{name} must be an integer, got {v!r}")
    if not lo <= v <= hi:
        raise ConfigError(f"{name} must be an integer in {lo}..{hi}, got {v!r}")
    return int(v)


def _finite(name: str, what: str, *values: float) -> None:
    for v in values:
        if not math.isfinite(v) or v == 0:
            raise ConfigError(
                f"{name}: {what} would be {v!r}; choose values whose derived rate stays finite and non-zero"
            )


def validate_cost(cost: Any, name: str = "cost") -> Number:
    """A request cost: finite, > 0 and <= 9007199254740991 (fractions allowed for rate limiters)."""
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {cost!r}")
    if cost > MAX_COST:
        raise ConfigError(f"{name} must be <= {MAX_COST}, got {cost!r}")
    return cost


class Strategy:
    """Base of the strategy value objects.

    ``kind`` is the wire/config name; ``check_transform``, ``peek_transform`` and ``forecast_transform``
    name manifest entries; ``params`` is the ARGV between ``now_ms`` and ``cost``.
    """

    kind: ClassVar[str]
    check_transform: ClassVar[str]
    peek_transform: ClassVar[str]
    forecast_transform: ClassVar[str]

    @property
    def params(self) -> tuple[Number, ...]:
        raise NotImplementedError

    @property
    def limit_value(self) -> Number:
        """The ``limit`` reported in decisions."""
        raise NotImplementedError

    @property
    def ttl_ms(self) -> Number:
        """The upstream strategy's ``ttlMs`` (spec 1.2: its store TTL hint), ms. Configuration, not a
        decision: the two-tier L1 uses it as the fallback ``reset_at`` offset before any lease lands."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for logs and ``tk config validate``."""
        return repr(self)


@dataclass(frozen=True)
class Gcra(Strategy):
    """GCRA: ``limit`` units per ``period`` paced smoothly, ``burst`` (default ``limit``) at one instant."""

    limit: Number
    period: Number | str
    burst: Number | None = None
    period_ms: Number = field(init=False, repr=False)
    kind: ClassVar[str] = "gcra"
    check_transform: ClassVar[str] = "gcra"
    peek_transform: ClassVar[str] = "gcra_peek"
    forecast_transform: ClassVar[str] = "gcra_forecast"

    def __post_init__(self) -> None:
        limit = _positive("gcra.limit", self.limit)
        period = parse_duration(self.period, "gcra.period")
        burst = limit if self.burst is None else _at_least("gcra.burst", self.burst, 1)
        t = period / limit
        _finite("gcra", "the emission interval period/limit", t, t * burst, _FAR_NOW + t * burst)
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "burst", burst)
        object.__setattr__(self, "period_ms", period)

    @property
    def params(self) -> tuple[Number, ...]:
        return (self.period_ms, self.limit, self.burst)  # type: ignore[return-value]

    @property
    def limit_value(self) -> Number:
        return self.burst  # type: ignore[return-value]

    @property
    def ttl_ms(self) -> Number:
        return math.ceil(self.period_ms / self.limit * self.burst)  # type: ignore[operator]

    def describe(self) -> str:
        return f"gcra {self.limit:g} per {self.period_ms:g} ms, burst {self.burst:g}"


@dataclass(frozen=True)
class TokenBucket(Strategy):
    """Token bucket of ``capacity`` tokens refilled continuously at ``refill_per_sec``; starts full."""

    capacity: Number
    refill_per_sec: Number
    kind: ClassVar[str] = "tokenBucket"
    check_transform: ClassVar[str] = "token_bucket"
    peek_transform: ClassVar[str] = "token_bucket_peek"
    forecast_transform: ClassVar[str] = "token_bucket_forecast"

    def __post_init__(self) -> None:
        capacity = _positive("tokenBucket.capacity", self.capacity)
        refill = _positive("tokenBucket.refillPerSec", self.refill_per_sec)
        per_ms = refill / 1000
        _finite("tokenBucket", "refillPerSec/1000", per_ms)
        _finite("tokenBucket", "the refill time capacity/refillPerMs", capacity / per_ms)
        object.__setattr__(self, "capacity", capacity)
        object.__setattr__(self, "refill_per_sec", refill)

    @property
    def params(self) -> tuple[Number, ...]:
        return (self.capacity, self.refill_per_sec)

    @property
    def limit_value(self) -> Number:
        return self.capacity

    @property
    def ttl_ms(self) -> Number:
        return max(1, math.ceil(self.capacity / (self.refill_per_sec / 1000)))

    def describe(self) -> str:
        return f"tokenBucket capacity {self.capacity:g}, refill {self.refill_per_sec:g}/s"


def _window(name: str, window: Number | str) -> Number:
    ms = parse_duration(window, f"{name}.windowMs")
    _finite(name, "the window arithmetic", _FAR_NOW / ms)
    _finite(name, "the window arithmetic", math.floor(_FAR_NOW / ms) * ms + ms)
    return ms


@dataclass(frozen=True)
class FixedWindow(Strategy):
    """At most ``limit`` units per epoch-aligned ``window``."""

    limit: Number
    window: Number | str
    window_ms: Number = field(init=False, repr=False)
    kind: ClassVar[str] = "fixedWindow"
    check_transform: ClassVar[str] = "fixed_window"
    peek_transform: ClassVar[str] = "fixed_window_peek"
    forecast_transform: ClassVar[str] = "fixed_window_forecast"

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit", _positive("fixedWindow.limit", self.limit))
        object.__setattr__(self, "window_ms", _window("fixedWindow", self.window))

    @property
    def params(self) -> tuple[Number, ...]:
        return (self.limit, self.window_ms)

    @property
    def limit_value(self) -> Number:
        return self.limit

    @property
    def ttl_ms(self) -> Number:
        return self.window_ms

    def describe(self) -> str:
        return f"fixedWindow {self.limit:g} per {self.window_ms:g} ms"


@dataclass(frozen=True)
class SlidingWindow(Strategy):
    """Rolling window of ``window`` split into ``buckets`` sub-buckets (error at most one bucket)."""

    limit: Number
    window: Number | str
    buckets: int = 10
    window_ms: Number = field(init=False, repr=False)
    kind: ClassVar[str] = "slidingWindow"
    check_transform: ClassVar[str] = "sliding_window"
    peek_transform: ClassVar[str] = "sliding_window_peek"
    forecast_transform: ClassVar[str] = "sliding_window_forecast"

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit", _positive("slidingWindow.limit", self.limit))
        window = _window("slidingWindow", self.window)
        buckets = _integer("slidingWindow.buckets", self.buckets, 1, MAX_BUCKETS)
        w = window / buckets
        _finite("slidingWindow", "the bucket width windowMs/buckets", w, _FAR_NOW / w)
        object.__setattr__(self, "window_ms", window)
        object.__setattr__(self, "buckets", buckets)

    @property
    def params(self) -> tuple[Number, ...]:
        return (self.window_ms, self.limit, self.buckets)

    @property
    def limit_value(self) -> Number:
        return self.limit

    @property
    def ttl_ms(self) -> Number:
        return math.ceil(self.window_ms + self.window_ms / self.buckets)

    def describe(self) -> str:
        return f"slidingWindow {self.limit:g} per {self.window_ms:g} ms in {self.buckets} buckets"


@dataclass(frozen=True)
class SlidingWindowLog(Strategy):
    """Exact trailing window: at most ``limit`` units in any ``window`` (memory O(limit) per key)."""

    limit: Number
    window: Number | str
    window_ms: Number = field(init=False, repr=False)
    kind: ClassVar[str] = "slidingWindowLog"
    check_transform: ClassVar[str] = "sliding_window_log"
    peek_transform: ClassVar[str] = "sliding_window_log_peek"
    forecast_transform: ClassVar[str] = "sliding_window_log_forecast"

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit", _positive("slidingWindowLog.limit", self.limit))
        object.__setattr__(self, "window_ms", _window("slidingWindowLog", self.window))

    @property
    def params(self) -> tuple[Number, ...]:
        return (self.window_ms, self.limit)

    @property
    def limit_value(self) -> Number:
        return self.limit

    @property
    def ttl_ms(self) -> Number:
        return self.window_ms

    def describe(self) -> str:
        return f"slidingWindowLog {self.limit:g} per {self.window_ms:g} ms"


Cadence = Literal["calendar-month", "calendar-week", "calendar-day", "fixed", "rolling"]
_CADENCE_MODE = {"calendar-month": 1, "calendar-week": 2, "calendar-day": 3, "fixed": 4}
CADENCES = ("calendar-month", "calendar-week", "calendar-day", "fixed", "rolling")


@dataclass(frozen=True)
class Quota(Strategy):
    """A billing-period budget: ``limit`` units per calendar month/week/day, fixed or rolling period.

    Calendar cadences use a fixed UTC offset (``offset_minutes``, |x| <= 840; no DST) and
    ``week_starts_on`` (0 = Sunday .. 6 = Saturday, default Monday). ``fixed`` needs ``period`` and
    optionally ``anchor`` (epoch ms where periods start); ``rolling`` is a sliding window of ``period``
    with ``buckets`` sub-buckets.
    """

    limit: Number
    reset_cadence: Cadence
    period: Number | str | None = None
    anchor: int = 0
    offset_minutes: int = 0
    week_starts_on: int = 1
    buckets: int = 10
    period_ms: Number = field(init=False, repr=False, default=0)
    kind: ClassVar[str] = "quota"

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit", _positive("quota.limit", self.limit))
        if self.reset_cadence not in CADENCES:
            raise ConfigError(
                f"quota.resetCadence must be one of {', '.join(CADENCES)}, got {self.reset_cadence!r}"
            )
        if self.reset_cadence in ("fixed", "rolling"):
            if self.period is None:
                raise ConfigError(f"quota.periodMs: required for resetCadence {self.reset_cadence!r}")
            object.__setattr__(self, "period_ms", _window("quota", self.period))
        elif self.period is not None:
            raise ConfigError(
                f"quota.periodMs: only valid with resetCadence 'fixed' or 'rolling', not {self.reset_cadence!r}"
            )
        object.__setattr__(self, "anchor", _integer("quota.anchor", self.anchor, -(2**53), 2**53))
        if self.anchor and self.reset_cadence != "fixed":
            raise ConfigError("quota.anchor: only valid with resetCadence 'fixed'")
        if isinstance(self.offset_minutes, (int, float)) and abs(self.offset_minutes) > 840:
            raise ConfigError(f"quota.offsetMinutes must be within ±840 (±14h), got {self.offset_minutes!r}")
        object.__setattr__(
            self, "offset_minutes", _integer("quota.offsetMinutes", self.offset_minutes, -840, 840)
        )
        if isinstance(self.week_starts_on, (int, float)) and not 0 <= self.week_starts_on <= 6:
            raise ConfigError(f"quota.weekStartsOn must be 0..6 (0=Sun … 6=Sat), got {self.week_starts_on!r}")
        object.__setattr__(self, "week_starts_on", _integer("quota.weekStartsOn", self.week_starts_on, 0, 6))
        object.__setattr__(self, "buckets", _integer("quota.buckets", self.buckets, 1, MAX_BUCKETS))
        if self.reset_cadence == "rolling":
            w = self.period_ms / self.buckets
            _finite("quota", "the bucket width periodMs/buckets", w, _FAR_NOW / w)

    @property
    def check_transform(self) -> str:  # type: ignore[override]
        return "sliding_window" if self.reset_cadence == "rolling" else "quota"

    @property
    def peek_transform(self) -> str:  # type: ignore[override]
        return "sliding_window_peek" if self.reset_cadence == "rolling" else "quota_peek"

    @property
    def forecast_transform(self) -> str:  # type: ignore[override]
        return "sliding_window_forecast" if self.reset_cadence == "rolling" else "quota_forecast"

    @property
    def params(self) -> tuple[Number, ...]:
        if self.reset_cadence == "rolling":
            return (self.period_ms, self.limit, self.buckets)
        mode = _CADENCE_MODE[self.reset_cadence]
        period = self.period_ms if self.reset_cadence == "fixed" else 0
        return (self.limit, mode, period, self.anchor, self.offset_minutes * 60_000, self.week_starts_on)

    @property
    def limit_value(self) -> Number:
        return self.limit

    @property
    def ttl_ms(self) -> Number:
        if self.reset_cadence == "rolling":
            return math.ceil(self.period_ms + self.period_ms / self.buckets)
        if self.reset_cadence == "fixed":
            return self.period_ms
        return {"calendar-month": 31, "calendar-week": 7, "calendar-day": 1}[self.reset_cadence] * 86_400_000

    def describe(self) -> str:
        extra = f" of {self.period_ms:g} ms" if self.period_ms else ""
        return f"quota {self.limit:g} per {self.reset_cadence}{extra}"


def strategy_from_options(kind: str, options: dict[str, Any]) -> Strategy:
    """Build a strategy from upstream-style camelCase options (the golden-vector format).

    ``{"kind": "gcra", "options": {"limit": 10, "periodMs": 1000, "burst": 5}}`` and so on.
    """
    o = dict(options)

    def take(*names: str, default: Any = None) -> Any:
        for n in names:
            if n in o:
                return o.pop(n)
        return default

    strategy: Strategy
    if kind == "gcra":
        strategy = Gcra(take("limit"), take("period", "periodMs", "windowMs"), take("burst"))
    elif kind == "tokenBucket":
        strategy = TokenBucket(take("capacity"), take("refillPerSec"))
    elif kind == "fixedWindow":
        strategy = FixedWindow(take("limit"), take("period", "windowMs"))
    elif kind == "slidingWindow":
        strategy = SlidingWindow(take("limit"), take("period", "windowMs"), take("buckets", default=10))
    elif kind == "slidingWindowLog":
        strategy = SlidingWindowLog(take("limit"), take("period", "windowMs"))
    elif kind == "quota":
        strategy = Quota(
            take("limit"),
            take("resetCadence"),
            take("period", "periodMs"),
            take("anchor", default=0),
            take("offsetMinutes", default=0),
            take("weekStartsOn", default=1),
            take("buckets", default=10),
        )
    else:
        raise ConfigError(
            f"unknown strategy {kind!r}; expected one of gcra, tokenBucket, fixedWindow, slidingWindow, "
            "slidingWindowLog, quota"
        )
    if o:
        raise ConfigError(f"{kind}: unknown option(s) {sorted(o)}")
    return strategy
