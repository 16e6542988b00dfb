"""Load-time bounds: each maximum passes and decides exactly on every store; one past it is refused
with the field, the value and the maximum named (docs/server.md, "Bounds")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import throttlekit as tk
from throttlekit._validate import MAX_DURATION_MS, MAX_SAFE_INTEGER
from throttlekit.config import PolicyConfigError, load_config

D = MAX_DURATION_MS
NOW = 1_000_000


def _ints(d: tk.Decision) -> None:
    for name in ("limit", "remaining", "reset_at", "retry_after_ms"):
        value = getattr(d, name)
        assert type(value) is int and abs(value) <= MAX_SAFE_INTEGER, (name, value)


#: (label, strategy at the bound, expected first decision, expected second decision with cost=1 or None)
AT_MAX: list[tuple[str, Callable[[], tk.Strategy], tk.Decision, tk.Decision | None]] = [
    (
        "fixedWindow window",
        lambda: tk.FixedWindow(1, D),
        tk.Decision(True, 1, 0, D, 0),
        tk.Decision(False, 1, 0, D, D - NOW),
    ),
    (
        "fixedWindow window as a string",
        lambda: tk.FixedWindow(1, "11574074d"),  # 999,999,993,600,000 ms
        tk.Decision(True, 1, 0, 999_999_993_600_000, 0),
        None,
    ),
    (
        "fixedWindow limit",
        lambda: tk.FixedWindow(MAX_SAFE_INTEGER, "1s"),
        tk.Decision(True, MAX_SAFE_INTEGER, MAX_SAFE_INTEGER - 1, 1_001_000, 0),
        tk.Decision(True, MAX_SAFE_INTEGER, MAX_SAFE_INTEGER - 2, 1_001_000, 0),
    ),
    (
        "gcra period",
        lambda: tk.Gcra(1, D),
        tk.Decision(True, 1, 0, NOW + D, 0),
        tk.Decision(False, 1, 0, NOW + D, D),
    ),
    (
        "slidingWindow window",
        lambda: tk.SlidingWindow(1, D, buckets=1),
        tk.Decision(True, 1, 0, 2 * D, 0),
        None,
    ),
    (
        "slidingWindowLog window",
        lambda: tk.SlidingWindowLog(1, D),
        tk.Decision(True, 1, 0, NOW + D, 0),
        tk.Decision(False, 1, 0, NOW + D, D),
    ),
    (
        "quota fixed period",
        lambda: tk.Quota(1, "fixed", D),
        tk.Decision(True, 1, 0, D, 0),
        tk.Decision(False, 1, 0, D, D - NOW),
    ),
    (
        "tokenBucket capacity",
        lambda: tk.TokenBucket(MAX_SAFE_INTEGER, 10_000),
        tk.Decision(True, MAX_SAFE_INTEGER, MAX_SAFE_INTEGER - 1, NOW + 1, 0),
        None,
    ),
    (
        "tokenBucket refill time",
        lambda: tk.TokenBucket(1, 1000 / D),
        tk.Decision(True, 1, 0, NOW + D, 0),
        tk.Decision(False, 1, 0, NOW + D, D),
    ),
    (
        "tokenBucket rate",
        lambda: tk.TokenBucket(1, MAX_SAFE_INTEGER),
        tk.Decision(True, 1, 0, NOW + 1, 0),
        None,
    ),
]


@pytest.mark.parametrize(("label", "build", "first", "second"), AT_MAX, ids=[a[0] for a in AT_MAX])
def test_each_maximum_decides_exactly(
    store_factory: Any, label: str, build: Callable[[], tk.Strategy], first: tk.Decision, second: Any
) -> None:
    clock = tk.ManualClock(NOW)
    store = store_factory(clock)
    limiter = tk.Limiter(build(), store=store, prefix="bounds", clock=clock)
    d = limiter.check("k")
    _ints(d)
    assert d == first
    if second is not None:
        d = limiter.check("k")
        _ints(d)
        assert d == second
    limiter.reset("k")
    store.close()


def test_meters_at_their_maximum_window(store_factory: Any) -> None:
    clock = tk.ManualClock(NOW)
    store = store_factory(clock)
    budget = tk.TokenBudget(MAX_SAFE_INTEGER, D, store=store, prefix="bounds-tb", clock=clock)
    d = budget.debit("k", MAX_SAFE_INTEGER)
    _ints(d)
    assert d == tk.Decision(True, MAX_SAFE_INTEGER, 0, D, 0)
    assert budget.debit("k") == tk.Decision(False, MAX_SAFE_INTEGER, 0, D, D - NOW)
    shaper = tk.LeakyBucket(1000 / D, D, store=store, prefix="bounds-lb", clock=clock)
    assert shaper.reserve("k") == (True, 0)
    assert shaper.reserve("k") == (True, D)
    assert shaper.reserve("k") == (False, D)
    store.delete(budget._kp + "k")
    store.delete(shaper._kp + "k")
    store.close()


#: (build one past the bound, the scoped field, the offending value as quoted, the maximum quoted)
PAST_MAX: list[tuple[Callable[[], Any], str, str, str]] = [
    (lambda: tk.FixedWindow(1, D + 1), "fixedWindow.windowMs", str(D + 1), str(D)),
    (lambda: tk.FixedWindow(1, 1e20), "fixedWindow.windowMs", "1e+20", str(D)),
    (lambda: tk.FixedWindow(1, "9999999999999999999999d"), "fixedWindow.windowMs", "'9999999999999999999999d'", str(D)),
    (lambda: tk.FixedWindow(MAX_SAFE_INTEGER + 1, "1s"), "fixedWindow.limit", str(MAX_SAFE_INTEGER + 1), str(MAX_SAFE_INTEGER)),
    (lambda: tk.Gcra(1, D + 1), "gcra.period", str(D + 1), str(D)),
    (lambda: tk.Gcra(1, "1d", burst=1e12), "gcra", "", str(D)),
    (lambda: tk.SlidingWindow(1, D + 1), "slidingWindow.windowMs", str(D + 1), str(D)),
    (lambda: tk.SlidingWindowLog(1, D + 1), "slidingWindowLog.windowMs", str(D + 1), str(D)),
    (lambda: tk.Quota(1, "fixed", 1e20), "quota.periodMs", "1e+20", str(D)),
    (lambda: tk.Quota(1, "rolling", D + 1), "quota.periodMs", str(D + 1), str(D)),
    (lambda: tk.TokenBucket(MAX_SAFE_INTEGER + 1, 1e6), "tokenBucket.capacity", str(MAX_SAFE_INTEGER + 1), str(MAX_SAFE_INTEGER)),
    (lambda: tk.TokenBucket(1, MAX_SAFE_INTEGER + 1), "tokenBucket.refillPerSec", str(MAX_SAFE_INTEGER + 1), str(MAX_SAFE_INTEGER)),
    (lambda: tk.TokenBucket(1, 1000 / D / 2), "tokenBucket", "", str(D)),
    (lambda: tk.TokenBudget(1, D + 1), "tokenBudget.windowMs", str(D + 1), str(D)),
    (lambda: tk.TokenBudget(MAX_SAFE_INTEGER + 1, 1000), "tokenBudget.budget", str(MAX_SAFE_INTEGER + 1), str(MAX_SAFE_INTEGER)),
    (lambda: tk.LeakyBucket(1000 / D / 2, 0), "leakyBucket.ratePerSec", "", str(D)),
    (lambda: tk.LeakyBucket(1, D + 1), "leakyBucket.maxQueueMs", str(D + 1), str(D)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "field", "value", "maximum"), PAST_MAX, ids=[p[1] + p[2][:12] for p in PAST_MAX]
)
def test_one_past_each_maximum_is_refused(
    build: Callable[[], Any], field: str, value: str, maximum: str
) -> None:
    with pytest.raises(tk.ConfigError) as info:
        build()
    text = str(info.value)
    assert text.startswith(field), text
    assert (f"got {value}" in text) if value else True, text
    assert maximum in text, text
    error = info.value.errors[0]
    assert f"{error.scope}.{error.field}".strip(".") == field


@pytest.mark.parametrize(
    ("policy", "path", "value"),
    [
        ("{strategy: fixedWindow, limit: 1, period: 1e20}", "limiters.p.period", 1e20),
        ("{strategy: fixedWindow, limit: 1, period: 9999999999999999999999d}", "limiters.p.period", "9999999999999999999999d"),
        ("{strategy: gcra, limit: 1, periodMs: 1000000000000001}", "limiters.p.periodMs", D + 1),
        ("{strategy: quota, limit: 1, resetCadence: fixed, period: 1e20}", "limiters.p.period", 1e20),
        ("{strategy: tokenBucket, capacity: 9007199254740992, refillPerSec: 1e6}", "limiters.p.capacity", 2**53),
        ("{fleetBudget: {budget: 1, windowMs: 1e20}}", "limiters.p.fleetBudget.windowMs", 1e20),
        ("{strategy: fixedWindow, limit: 9, period: 1s, twoTier: {batch: 2, returnIdleAfterMs: 1e20}}",
         "limiters.p.twoTier.returnIdleAfterMs", 1e20),
    ],
)  # fmt: skip
def test_config_validate_refuses_what_redis_cannot_store(policy: str, path: str, value: Any) -> None:
    with pytest.raises(PolicyConfigError) as info:
        load_config(f"limiters:\n  p: {policy}\n", "x.yaml")
    (issue,) = info.value.issues
    assert (issue.path, issue.value) == (path, value)
    maximum = MAX_SAFE_INTEGER if path.endswith("capacity") else D
    assert str(maximum) in issue.allowed


def test_config_error_carries_every_field_and_a_bounded_value() -> None:
    with pytest.raises(tk.ConfigError) as info:
        tk.Gcra(0, "x" * 10_000, burst=0.5)
    fields = [(e.scope, e.field) for e in info.value.errors]
    assert fields == [("gcra", "limit"), ("gcra", "period"), ("gcra", "burst")]
    assert info.value.field == "limit" and info.value.value == 0
    period = info.value.errors[1]
    assert period.value == "x" * 10_000
    assert len(str(period)) < 400 and "..." in str(period)
