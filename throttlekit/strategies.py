"""Strategy value objects: validated parameters that select a Lua transform and its ARGV.

A strategy computes nothing: it checks its parameters (the upstream's rules, plus the bounds of
:mod:`throttlekit._validate`, so no derived value leaves what the Lua and Redis represent exactly; all
bad fields are reported at once in ``ConfigError.errors``), names the transforms that implement it, and
lays out their ARGV. Durations are milliseconds or strings such as ``"500ms"``, ``"30s"``, ``"1m"``, ``"1h"``,
``"1d"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from . import _validate as v
from ._errors import ConfigError
from ._loader import load_manifest

__all__ = [
    "MAX_COST",
    "FixedWindow",
    "Gcra",
    "Quota",
    "SlidingWindow",
    "SlidingWindowLog",
    "Strategy",
    "TokenBucket",
    "from_spec",
    "parse_duration",
    "strategy_from_options",
]

#: Largest cost a request may carry (JavaScript's ``Number.MAX_SAFE_INTEGER``, as upstream).
MAX_COST = v.MAX_SAFE_INTEGER
MAX_BUCKETS = v.MAX_BUCKETS

Number = int | float


def parse_duration(value: Any, name: str = "period") -> Number:
    """A duration in ms from a number (ms) or ``"<number><ms|s|m|h|d>"``; positive and at most
    :data:`~throttlekit._validate.MAX_DURATION_MS`."""
    return v.duration(name, value)


def validate_cost(cost: Any, name: str = "cost") -> Number:
    """A request cost: finite, > 0 and <= 9007199254740991 (fractions allowed for rate limiters)."""
    return v.cost(cost, name)


def _window(c: v.Checks, name: str, window: Any, buckets: int | None = 1) -> Number | None:
    """A window (and its bucket width when ``buckets``): a duration the Lua can divide instants by."""
    ms = c(v.duration, name, window)
    if ms is not None and buckets is not None:
        what = "the bucket width window/buckets" if buckets > 1 else "the window"
        if c(v.span, name, what, ms / buckets, divides_now=True) is None:
            return None
    return ms


def _one_of(c: v.Checks, name: str, alias: str, value: Any, alias_value: Any) -> Any:
    """The duration given as ``name`` or as its millisecond alias (throttlekit-py's keyword, e.g.
    ``period_ms``); both may be given only when they agree."""
    if value is None:
        return alias_value  # both absent: the duration check reports the missing value
    if alias_value is not None:
        try:
            same = v.duration(name, value) == v.duration(alias, alias_value)
        except ConfigError:
            same = False
        if not same:
            c.error(alias, f"disagrees with {name}={value!r}; give one of them", alias_value)
    return value


class Params(tuple):  # type: ignore[type-arg]
    """A strategy's check ARGV (a tuple), also callable as throttlekit-py's ``params()``: the parameters
    by their camelCase wire names (``{"limit": 100, "periodMs": 60000, "burst": 20}``)."""

    named: dict[str, Number]

    def __new__(cls, values: tuple[Number, ...], named: dict[str, Number]) -> Params:
        self = super().__new__(cls, values)
        self.named = named
        return self

    def __call__(self) -> dict[str, Number]:
        return dict(self.named)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


class Strategy:
    """Base of the strategy value objects.

    ``kind`` is the wire/config name; ``check_transform``, ``peek_transform`` and ``forecast_transform``
    name manifest entries. ``param_values`` holds the parameters by the manifest's ARGV names;
    :meth:`arguments` packs them in the order a transform's manifest entry lists them (``params`` is the
    check transform's packing): the manifest, not this class, decides ARGV positions.
    """

    kind: ClassVar[str]
    check_transform: ClassVar[str]
    peek_transform: ClassVar[str]
    forecast_transform: ClassVar[str]

    @property
    def param_values(self) -> dict[str, Number]:
        """The strategy's parameters by ARGV name (as ``lua/manifest.toml`` names them)."""
        raise NotImplementedError

    def arguments(self, transform: str) -> tuple[Number, ...]:
        """The ARGV of ``transform`` between ``now_ms`` and the per-call ``cost`` (absent for a peek),
        packed by the manifest's names."""
        t = load_manifest()[transform]
        names = t.argv[1:-1] if t.argv[-1] == "cost" else t.argv[1:]
        values = self.param_values
        missing = [n for n in names if n not in values]
        if missing:
            raise ConfigError(
                f"{self.kind}: transform {transform!r} needs ARGV {missing} the strategy does not define"
            )
        return tuple(values[n] for n in names)

    @property
    def params(self) -> Params:
        """The check transform's ARGV between ``now_ms`` and ``cost``; calling it (``params()``) gives
        the parameters by camelCase name, as throttlekit-py's strategies do."""
        named = {_camel(k): val for k, val in self.param_values.items()}
        return Params(self.arguments(self.check_transform), named)

    @property
    def limit_value(self) -> Number:
        """The ``limit`` reported in decisions."""
        raise NotImplementedError

    @property
    def ttl_ms(self) -> Number:
        """The strategy's store TTL hint (``ttlMs`` in the wire vocabulary), ms. Configuration, not a
        decision: the two-tier L1 uses it as the fallback ``reset_at`` offset before any lease lands."""
        raise NotImplementedError

    @property
    def quota_window_ms(self) -> Number | None:
        """The window ``limit`` is counted over, when the strategy has one (fixed and sliding windows):
        the ``w`` of the structured ``RateLimit-Policy`` header. None for gcra, tokenBucket and quota."""
        return None

    def describe(self) -> str:
        """One line for logs and ``tk config validate``."""
        return repr(self)


@dataclass(frozen=True)
class Gcra(Strategy):
    """GCRA: ``limit`` units per ``period`` paced smoothly, ``burst`` (default ``limit``) at one instant."""

    limit: Number
    period: Number | str = None  # type: ignore[assignment]  # or period_ms=
    burst: Number | None = None
    period_ms: Number = field(default=None, repr=False)  # type: ignore[assignment]
    kind: ClassVar[str] = "gcra"
    check_transform: ClassVar[str] = "gcra"
    peek_transform: ClassVar[str] = "gcra_peek"
    forecast_transform: ClassVar[str] = "gcra_forecast"

    def __post_init__(self) -> None:
        c = v.Checks("gcra")
        limit = c(v.number, "limit", self.limit)
        given = _one_of(c, "period", "period_ms", self.period, self.period_ms)
        period = c(v.duration, "period", given)
        burst = limit if self.burst is None else c(v.number, "burst", self.burst, low=1, low_open=False)
        if limit is not None and period is not None and burst is not None:
            c(v.span, "", "the burst span period/limit*burst", period / limit * burst)
        c.done()
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "period", given)
        object.__setattr__(self, "burst", burst)
        object.__setattr__(self, "period_ms", period)

    @property
    def param_values(self) -> dict[str, Number]:
        return {"period_ms": self.period_ms, "limit": self.limit, "burst": self.burst}  # type: ignore[dict-item]

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
        c = v.Checks("tokenBucket")
        capacity = c(v.number, "capacity", self.capacity)
        refill = c(v.number, "refillPerSec", self.refill_per_sec)
        if capacity is not None and refill is not None:
            c(v.span, "", "the full refill time capacity/refillPerSec", capacity * 1000 / refill)
        c.done()
        object.__setattr__(self, "capacity", capacity)
        object.__setattr__(self, "refill_per_sec", refill)

    @property
    def param_values(self) -> dict[str, Number]:
        return {"capacity": self.capacity, "refill_per_sec": self.refill_per_sec}

    @property
    def limit_value(self) -> Number:
        return self.capacity

    @property
    def ttl_ms(self) -> Number:
        return max(1, math.ceil(self.capacity / (self.refill_per_sec / 1000)))

    def describe(self) -> str:
        return f"tokenBucket capacity {self.capacity:g}, refill {self.refill_per_sec:g}/s"


@dataclass(frozen=True)
class FixedWindow(Strategy):
    """At most ``limit`` units per epoch-aligned ``window``."""

    limit: Number
    window: Number | str = None  # type: ignore[assignment]  # or window_ms=
    window_ms: Number = field(default=None, repr=False)  # type: ignore[assignment]
    kind: ClassVar[str] = "fixedWindow"
    check_transform: ClassVar[str] = "fixed_window"
    peek_transform: ClassVar[str] = "fixed_window_peek"
    forecast_transform: ClassVar[str] = "fixed_window_forecast"

    def __post_init__(self) -> None:
        c = v.Checks("fixedWindow")
        limit = c(v.number, "limit", self.limit)
        given = _one_of(c, "window", "window_ms", self.window, self.window_ms)
        window = _window(c, "windowMs", given)
        c.done()
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "window", given)
        object.__setattr__(self, "window_ms", window)

    @property
    def param_values(self) -> dict[str, Number]:
        return {"limit": self.limit, "window_ms": self.window_ms}

    @property
    def limit_value(self) -> Number:
        return self.limit

    @property
    def ttl_ms(self) -> Number:
        return self.window_ms

    @property
    def quota_window_ms(self) -> Number:
        return self.window_ms

    def describe(self) -> str:
        return f"fixedWindow {self.limit:g} per {self.window_ms:g} ms"


@dataclass(frozen=True)
class SlidingWindow(Strategy):
    """Rolling window of ``window`` split into ``buckets`` sub-buckets (error at most one bucket)."""

    limit: Number
    window: Number | str = None  # type: ignore[assignment]  # or window_ms=
    buckets: int = 10
    window_ms: Number = field(default=None, repr=False)  # type: ignore[assignment]
    kind: ClassVar[str] = "slidingWindow"
    check_transform: ClassVar[str] = "sliding_window"
    peek_transform: ClassVar[str] = "sliding_window_peek"
    forecast_transform: ClassVar[str] = "sliding_window_forecast"

    def __post_init__(self) -> None:
        c = v.Checks("slidingWindow")
        limit = c(v.number, "limit", self.limit)
        buckets = c(v.integer, "buckets", self.buckets, 1, MAX_BUCKETS)
        given = _one_of(c, "window", "window_ms", self.window, self.window_ms)
        window = _window(c, "windowMs", given, buckets)
        c.done()
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "window", given)
        object.__setattr__(self, "window_ms", window)
        object.__setattr__(self, "buckets", buckets)

    @property
    def param_values(self) -> dict[str, Number]:
        return {"window_ms": self.window_ms, "limit": self.limit, "buckets": self.buckets}

    @property
    def limit_value(self) -> Number:
        return self.limit

    @property
    def ttl_ms(self) -> Number:
        return math.ceil(self.window_ms + self.window_ms / self.buckets)

    @property
    def quota_window_ms(self) -> Number:
        return self.window_ms

    def describe(self) -> str:
        return f"slidingWindow {self.limit:g} per {self.window_ms:g} ms in {self.buckets} buckets"


@dataclass(frozen=True)
class SlidingWindowLog(Strategy):
    """Exact trailing window: at most ``limit`` units in any ``window`` (memory O(limit) per key)."""

    limit: Number
    window: Number | str = None  # type: ignore[assignment]  # or window_ms=
    window_ms: Number = field(default=None, repr=False)  # type: ignore[assignment]
    kind: ClassVar[str] = "slidingWindowLog"
    check_transform: ClassVar[str] = "sliding_window_log"
    peek_transform: ClassVar[str] = "sliding_window_log_peek"
    forecast_transform: ClassVar[str] = "sliding_window_log_forecast"

    #: The largest ``limit``: the log holds one entry per admitted unit, so one request may write
    #: ``limit`` entries and a key hold ``limit`` of them. At this bound the worst single request takes
    #: milliseconds (docs/stores.md, "Worst single request"); use slidingWindow above it.
    MAX_LIMIT: ClassVar[int] = 1_000

    def __post_init__(self) -> None:
        c = v.Checks("slidingWindowLog")
        limit = c(v.number, "limit", self.limit, high=self.MAX_LIMIT)
        given = _one_of(c, "window", "window_ms", self.window, self.window_ms)
        window = _window(c, "windowMs", given)
        c.done()
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "window", given)
        object.__setattr__(self, "window_ms", window)

    @property
    def param_values(self) -> dict[str, Number]:
        return {"window_ms": self.window_ms, "limit": self.limit}

    @property
    def limit_value(self) -> Number:
        return self.limit

    @property
    def ttl_ms(self) -> Number:
        return self.window_ms

    @property
    def quota_window_ms(self) -> Number:
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
        c = v.Checks("quota")
        limit = c(v.number, "limit", self.limit)
        cadence = c(v.choice, "resetCadence", self.reset_cadence, CADENCES)
        period: Number | None = 0
        buckets = c(v.integer, "buckets", self.buckets, 1, MAX_BUCKETS)
        if cadence in ("fixed", "rolling"):
            if self.period is None:
                c.error("periodMs", f"is required for resetCadence {cadence}", allowed="a duration")
            else:
                period = _window(c, "periodMs", self.period, buckets if cadence == "rolling" else 1)
        elif cadence is not None and self.period is not None:
            c.error("periodMs", f"only applies to resetCadence fixed or rolling, not {cadence}", self.period)
        anchor = c(v.integer, "anchor", self.anchor, -MAX_COST, MAX_COST, " (epoch ms)")
        if anchor and cadence is not None and cadence != "fixed":
            c.error("anchor", f"only applies to resetCadence fixed, not {cadence}", anchor)
        offset = c(v.integer, "offsetMinutes", self.offset_minutes, -840, 840, " (minutes east of UTC, ±14h)")
        week = c(v.integer, "weekStartsOn", self.week_starts_on, 0, 6, " (0 = Sunday .. 6 = Saturday)")
        c.done()
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "period_ms", period)
        object.__setattr__(self, "anchor", anchor)
        object.__setattr__(self, "offset_minutes", offset)
        object.__setattr__(self, "week_starts_on", week)
        object.__setattr__(self, "buckets", buckets)

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
    def param_values(self) -> dict[str, Number]:
        if self.reset_cadence == "rolling":
            return {"window_ms": self.period_ms, "limit": self.limit, "buckets": self.buckets}
        return {
            "limit": self.limit,
            "mode": _CADENCE_MODE[self.reset_cadence],
            "period_ms": self.period_ms if self.reset_cadence == "fixed" else 0,
            "anchor": self.anchor,
            "offset_ms": self.offset_minutes * 60_000,
            "week_starts_on": self.week_starts_on,
        }

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

    @property
    def quota_window_ms(self) -> Number | None:
        return self.period_ms if self.reset_cadence in ("fixed", "rolling") else None

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


def from_spec(kind: str, options: dict[str, Any]) -> Strategy:
    """throttlekit-py's name for :func:`strategy_from_options`: a strategy from ``kind`` and camelCase
    options (``from_spec("gcra", {"limit": 100, "periodMs": 60000, "burst": 20})``)."""
    return strategy_from_options(kind, options)
