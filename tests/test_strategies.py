"""Strategy validation: every bad parameter gets a message naming the field, the value and the rule."""

from __future__ import annotations

from typing import Any

import pytest

import throttlekit as tk
from throttlekit.strategies import parse_duration, strategy_from_options


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (250, 250),
        (1.5, 1.5),
        ("500ms", 500),
        ("30s", 30_000),
        ("1m", 60_000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
        (" 2.5s ", 2_500),
        ("10", 10),
    ],
)
def test_durations(value: Any, ms: float) -> None:
    assert parse_duration(value) == ms


@pytest.mark.parametrize("value", ["1w", "abc", "", "-1s", "1.s", True, None, [1]])
def test_bad_durations(value: Any) -> None:
    with pytest.raises(tk.ConfigError, match="period"):
        parse_duration(value)


@pytest.mark.parametrize("value", [0, -5, float("inf"), float("nan")])
def test_non_positive_durations(value: float) -> None:
    with pytest.raises(tk.ConfigError, match=r"is not a positive duration|is too long"):
        parse_duration(value)


BAD = [
    (
        lambda: tk.Gcra(0, "1s"),
        "gcra.limit is out of range, got 0; allowed: a number > 0 and <= 9007199254740991",
    ),
    (
        lambda: tk.Gcra(10, "1s", burst=0.5),
        "gcra.burst is out of range, got 0.5; allowed: a number >= 1 and <= 9007199254740991",
    ),
    (lambda: tk.Gcra(5e-324, 1000), "gcra: gives the burst span period/limit\\*burst inf ms, too long"),
    (lambda: tk.Gcra(10, "soon"), "gcra.period is not a duration, got 'soon'"),
    (lambda: tk.TokenBucket(-1, 1), "tokenBucket.capacity is out of range, got -1"),
    (
        lambda: tk.TokenBucket(10, 5e-324),
        "tokenBucket: gives the full refill time capacity/refillPerSec inf ms, too long",
    ),
    (lambda: tk.FixedWindow(5, 0), "fixedWindow.windowMs is not a positive duration, got 0"),
    (lambda: tk.FixedWindow(5, 1e-320), "fixedWindow.windowMs makes the window 9.99989e-321 ms, too short"),
    (
        lambda: tk.SlidingWindow(5, 1000, buckets=0),
        "slidingWindow.buckets is out of range, got 0; allowed: an integer from 1 to 1000",
    ),
    (
        lambda: tk.SlidingWindow(5, 1000, buckets=100_001),
        "slidingWindow.buckets is out of range, got 100001",
    ),
    (lambda: tk.SlidingWindow(5, 1000, buckets=2.5), "slidingWindow.buckets must be an integer, got 2.5"),
    (
        lambda: tk.SlidingWindowLog(True, 1000),
        "slidingWindowLog.limit must be a number, got True",
    ),
    (
        lambda: tk.Quota(5, "monthly"),
        "quota.resetCadence is not a known resetCadence, got 'monthly'; allowed: calendar-month, calendar-week",
    ),  # type: ignore[arg-type]
    (lambda: tk.Quota(5, "fixed"), "quota.periodMs is required for resetCadence fixed"),
    (
        lambda: tk.Quota(5, "calendar-day", period=1000),
        "quota.periodMs only applies to resetCadence fixed or rolling, not calendar-day",
    ),
    (
        lambda: tk.Quota(5, "calendar-day", offset_minutes=900),
        "quota.offsetMinutes is out of range, got 900; allowed: an integer from -840 to 840",
    ),
    (
        lambda: tk.Quota(5, "calendar-week", week_starts_on=7),
        "quota.weekStartsOn is out of range, got 7; allowed: an integer from 0 to 6",
    ),
    (
        lambda: tk.Quota(5, "calendar-day", anchor=5),
        "quota.anchor only applies to resetCadence fixed, not calendar-day",
    ),
    (
        lambda: strategy_from_options("gcra", {"limit": 1, "periodMs": 1000, "brust": 2}),
        r"gcra: unknown option\(s\) \['brust'\]",
    ),
    (lambda: strategy_from_options("leaky", {}), "unknown strategy 'leaky'"),
]


@pytest.mark.parametrize(("build", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_parameters(build: Any, message: str) -> None:
    with pytest.raises(tk.ConfigError, match=message):
        build()


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        tk.Gcra(-1, 1)


def test_defaults_and_params() -> None:
    g = tk.Gcra(10, "1s")
    assert g.burst == 10 and g.period_ms == 1000 and g.params == (1000, 10, 10)
    assert tk.Quota(3, "calendar-week", offset_minutes=-300, week_starts_on=0).params == (
        3,
        2,
        0,
        0,
        -18_000_000,
        0,
    )
    rolling = tk.Quota(3, "rolling", period="1h", buckets=6)
    assert rolling.check_transform == "sliding_window" and rolling.params == (3_600_000, 3, 6)
    assert tk.SlidingWindow(5, "1m").describe() == "slidingWindow 5 per 60000 ms in 10 buckets"


@pytest.mark.parametrize("cost", [0, -1, float("nan"), float("inf"), 2**53, "1", None, True])
def test_bad_costs_are_rejected(cost: Any) -> None:
    limiter = tk.Limiter(tk.Gcra(10, "1s"))
    with pytest.raises(tk.ConfigError, match=r"cost (must be|is out of range)"):
        limiter.check("k", cost)
    with pytest.raises(tk.ConfigError, match=r"cost (must be|is out of range)"):
        limiter.check_many(["k"], cost)
    with pytest.raises(tk.ConfigError, match=r"cost (must be|is out of range)"):
        limiter.forecast("k", cost)


def test_bad_keys_are_rejected() -> None:
    limiter = tk.Limiter(tk.Gcra(10, "1s"))
    with pytest.raises(tk.ConfigError, match="key must be a string, got int 5"):
        limiter.check(5)  # type: ignore[arg-type]
    with pytest.raises(tk.ConfigError, match="key must be a string"):
        limiter.check_many(["a", None])  # type: ignore[list-item]
