"""decision_headers: each style, exact values, bounds, Retry-After, hostile policy names."""

from __future__ import annotations

import pytest

import throttlekit as tk
from throttlekit.headers import STYLES

NOW = 1_700_000_000_000
ALLOWED = tk.Decision(True, 100, 42, NOW + 17_500, 0)
DENIED = tk.Decision(False, 100, 0, NOW + 60_000, 2_001)


def test_ietf_is_the_default_and_has_no_retry_after_when_allowed() -> None:
    assert tk.decision_headers(ALLOWED, now_ms=NOW) == {
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "42",
        "RateLimit-Reset": "18",  # 17.5 s rounded up: never advertise less than the real wait
    }


def test_legacy_uses_epoch_seconds_and_denials_carry_retry_after() -> None:
    assert tk.decision_headers(DENIED, "legacy", now_ms=NOW) == {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str((NOW + 60_000) // 1000),
        "Retry-After": "3",
    }


def test_both_is_ietf_plus_legacy() -> None:
    both = tk.decision_headers(DENIED, "both", now_ms=NOW)
    ietf = tk.decision_headers(DENIED, "ietf", now_ms=NOW)
    legacy = tk.decision_headers(DENIED, "legacy", now_ms=NOW)
    assert both == {**ietf, **legacy}


def test_structured_fields_of_the_current_draft() -> None:
    h = tk.decision_headers(ALLOWED, "structured", now_ms=NOW, policy="api", window_ms=60_000)
    assert h == {"RateLimit-Policy": '"api";q=100;w=60', "RateLimit": '"api";r=42;t=18'}
    unnamed = tk.decision_headers(DENIED, "structured", now_ms=NOW)
    assert unnamed == {
        "RateLimit-Policy": '"default";q=100',  # no w= when the window is not known
        "RateLimit": '"default";r=0;t=60',
        "Retry-After": "3",
    }


def test_all_is_every_field_at_once() -> None:
    h = tk.decision_headers(DENIED, "all", now_ms=NOW)
    assert set(h) == {
        "RateLimit-Policy", "RateLimit", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
        "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After",
    }  # fmt: skip


def test_values_are_clamped_to_what_the_fields_can_carry() -> None:
    odd = tk.Decision(False, 10**20, -5, NOW - 5_000, 1)
    h = tk.decision_headers(odd, "all", now_ms=NOW, policy="p")
    assert h["RateLimit-Remaining"] == h["X-RateLimit-Remaining"] == "0"
    assert h["RateLimit-Reset"] == "0"  # a past reset is "now", never negative
    assert h["RateLimit-Policy"] == '"p";q=999999999999999'  # the largest structured-field integer
    assert h["Retry-After"] == "1"  # 1 ms is still a wait: rounded up to a whole second


def test_policy_names_are_escaped_or_refused() -> None:
    h = tk.decision_headers(ALLOWED, "structured", now_ms=NOW, policy='a"b\\c')
    assert h["RateLimit"].startswith('"a\\"b\\\\c";')
    for bad in ("caf\u00e9", "line\nbreak", "\x00"):
        with pytest.raises(tk.ConfigError, match="printable ASCII"):
            tk.decision_headers(ALLOWED, "structured", policy=bad)


def test_an_unknown_style_is_a_value_error_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown header style 'rfc'.*'ietf', 'legacy', 'both'"):
        tk.decision_headers(ALLOWED, "rfc")  # type: ignore[arg-type]
    assert STYLES == ("ietf", "legacy", "both", "structured", "all")


def test_the_wall_clock_is_the_default_now() -> None:
    import time

    soon = tk.Decision(True, 1, 1, int(time.time() * 1000) + 30_000, 0)
    assert 29 <= int(tk.decision_headers(soon)["RateLimit-Reset"]) <= 30


def test_a_strategy_s_counting_window_is_the_policy_window() -> None:
    assert tk.FixedWindow(5, "1m").quota_window_ms == 60_000
    assert tk.SlidingWindow(5, "10s", 5).quota_window_ms == 10_000
    assert tk.SlidingWindowLog(5, 500).quota_window_ms == 500
    assert tk.Quota(5, "fixed", period="1h").quota_window_ms == 3_600_000
    assert tk.Quota(5, "calendar-day").quota_window_ms is None  # calendar periods vary in length
    assert tk.Gcra(5, "1m").quota_window_ms is None  # a burst, not a count per window
    assert tk.TokenBucket(5, 1).quota_window_ms is None
    with tk.RedisBackend(url="redis://127.0.0.1:1/0", strategy=tk.FixedWindow(3, 2000)) as backend:
        assert getattr(tk.as_checker(backend), "window_ms", None) == 2000
