"""Hypothesis properties of the transforms: admission bounds, denials never change state, and every
executor (LuaJIT, PUC Lua 5.1, Redis) agrees on random op sequences."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import throttlekit as tk
from tests._support.env import redis_client
from tests._support.stores import unique_prefix

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# (dt ms >= 0, cost) steps on a monotonic manual clock
steps = st.lists(st.tuples(st.integers(0, 400), st.integers(1, 4)), min_size=1, max_size=60)
frac_steps = st.lists(
    st.tuples(
        st.integers(0, 400),
        st.one_of(st.integers(1, 4), st.floats(0.25, 3.5).map(lambda x: round(x * 4) / 4)),
    ),
    min_size=1,
    max_size=40,
)


def run(
    strategy: tk.Strategy, ops: list[tuple[int, float]], store: Any = None, start: int = 1_700_000_000_000
) -> list[tuple[int, float, tk.Decision]]:
    clock = tk.ManualClock(start)
    limiter = tk.Limiter(
        strategy, store=store if store is not None else tk.MemoryStore(clock=clock), clock=clock
    )
    out = []
    for dt, cost in ops:
        clock.advance(dt)
        out.append((clock.now_ms(), cost, limiter.check("k", cost)))
    limiter.reset("k")
    return out


@SETTINGS
@given(steps, st.integers(1, 20), st.integers(100, 5000), st.integers(1, 20))
def test_gcra_never_admits_more_than_burst_plus_rate(
    ops: list[tuple[int, int]], limit: int, period: int, burst: int
) -> None:
    trace = run(tk.Gcra(limit, period, burst=burst), ops)
    t0 = trace[0][0]
    admitted = 0.0
    for now, cost, d in trace:
        if d.allowed:
            admitted += cost
        assert admitted <= burst + (now - t0) * limit / period + 1e-9


@SETTINGS
@given(steps, st.integers(1, 20), st.integers(1, 20))
def test_token_bucket_never_admits_more_than_capacity_plus_refill(
    ops: list[tuple[int, int]], cap: int, rate: int
) -> None:
    trace = run(tk.TokenBucket(cap, rate), ops)
    t0 = trace[0][0]
    admitted = 0
    for now, cost, d in trace:
        admitted += cost if d.allowed else 0
        assert admitted <= cap + (now - t0) * rate / 1000 + 1e-9


@SETTINGS
@given(steps, st.integers(1, 10), st.integers(50, 2000))
def test_fixed_window_admits_at_most_limit_per_window(
    ops: list[tuple[int, int]], limit: int, window: int
) -> None:
    per_window: dict[int, int] = {}
    for now, cost, d in run(tk.FixedWindow(limit, window), ops):
        if d.allowed:
            per_window[now // window] = per_window.get(now // window, 0) + cost
    assert all(v <= limit for v in per_window.values())


@SETTINGS
@given(steps, st.integers(1, 10), st.integers(50, 2000))
def test_sliding_log_admits_at_most_limit_in_any_trailing_window(
    ops: list[tuple[int, int]], limit: int, window: int
) -> None:
    admitted = [(now, cost) for now, cost, d in run(tk.SlidingWindowLog(limit, window), ops) if d.allowed]
    for now, _ in admitted:
        assert sum(c for t, c in admitted if now - window < t <= now) <= limit


@SETTINGS
@given(steps, st.integers(1, 10), st.integers(50, 2000), st.integers(1, 10))
def test_sliding_window_admits_at_most_limit_in_any_run_of_buckets(
    ops: list[tuple[int, int]], limit: int, window: int, buckets: int
) -> None:
    """The estimate counts the newest `buckets` ticks in full, so any `buckets` consecutive bucket-aligned
    ticks hold at most `limit` admitted units (the oldest tick's weight is the only approximation)."""
    w = window / buckets
    per_tick: dict[int, int] = {}
    for now, cost, d in run(tk.SlidingWindow(limit, window, buckets=buckets), ops):
        if d.allowed:
            per_tick[int(now // w)] = per_tick.get(int(now // w), 0) + cost
    for last in per_tick:
        assert sum(per_tick.get(t, 0) for t in range(last - buckets + 1, last + 1)) <= limit


@SETTINGS
@given(steps, st.integers(1, 10), st.integers(50, 2000), st.integers(0, 3000))
def test_fixed_quota_admits_at_most_limit_per_period(
    ops: list[tuple[int, int]], limit: int, period: int, anchor: int
) -> None:
    per_period: dict[int, int] = {}
    for now, cost, d in run(tk.Quota(limit, "fixed", period=period, anchor=anchor), ops):
        if d.allowed:
            k = (now - anchor) // period
            per_period[k] = per_period.get(k, 0) + cost
    assert all(v <= limit for v in per_period.values())


def _live(dump: Any, horizon: int) -> Any:
    return [] if dump is None else [e for e in dump[1] if e[1] > horizon]


@SETTINGS
@given(steps, st.sampled_from(["gcra", "tb", "fw", "sw", "swl", "quota"]))
def test_a_denial_never_changes_state(ops: list[tuple[int, int]], which: str) -> None:
    strategy = {
        "gcra": tk.Gcra(3, 1000, burst=2),
        "tb": tk.TokenBucket(3, 2),
        "fw": tk.FixedWindow(3, 500),
        "sw": tk.SlidingWindow(3, 500, buckets=5),
        "swl": tk.SlidingWindowLog(3, 500),
        "quota": tk.Quota(3, "fixed", period=700, anchor=100),
    }[which]
    clock = tk.ManualClock(1_000_000)
    store = tk.MemoryStore(clock=clock)
    limiter = tk.Limiter(strategy, store=store, clock=clock)
    for dt, cost in ops:
        clock.advance(dt)
        before_peek = limiter.peek("k")
        before = store.dump("k")
        d = limiter.check("k", cost)
        if not d.allowed:
            after = store.dump("k")
            if which == "swl" and before is not None:
                # the log prunes entries that aged out; the live entries must be untouched
                horizon = clock.now_ms() - 500
                assert _live(before, horizon) == _live(after, horizon)
            else:
                assert before == after
            assert limiter.peek("k") == before_peek


def _agree(strategy: tk.Strategy, ops: list[tuple[int, float]]) -> None:
    jit = run(strategy, ops, tk.MemoryStore(clock=tk.ManualClock(0), runtime="luajit"))
    puc = run(strategy, ops, tk.MemoryStore(clock=tk.ManualClock(0), runtime="lua51"))
    red = run(
        strategy, ops, tk.RedisStore(redis_client(), prefix=unique_prefix("tkt-prop"))
    )  # 5 suites share Redis
    assert jit == puc == red


STRATEGIES = st.one_of(
    st.builds(
        lambda lim, p, b: tk.Gcra(lim, p, burst=b),
        st.integers(1, 30),
        st.integers(10, 3000),
        st.integers(1, 10),
    ),
    st.builds(tk.TokenBucket, st.integers(1, 10), st.sampled_from([0.5, 1, 3, 7, 250])),
    st.builds(tk.FixedWindow, st.integers(1, 10), st.integers(10, 3000)),
    st.builds(tk.SlidingWindow, st.integers(1, 10), st.integers(10, 3000), st.integers(1, 12)),
    st.builds(tk.SlidingWindowLog, st.integers(1, 8), st.integers(10, 3000)),
    st.builds(
        lambda lim, c: tk.Quota(lim, c),
        st.integers(1, 10),
        st.sampled_from(["calendar-day", "calendar-week", "calendar-month"]),
    ),
)


@settings(max_examples=40, deadline=None)
@given(STRATEGIES, frac_steps)
def test_executors_agree_on_random_sequences(strategy: tk.Strategy, ops: list[tuple[int, float]]) -> None:
    _agree(strategy, ops)


def test_cost_above_burst_is_never_admitted() -> None:
    trace = run(tk.Gcra(10, 1000, burst=3), [(0, 4), (5000, 4), (10_000, 4)])
    assert not any(d.allowed for _, _, d in trace)
    assert all(d.retry_after_ms > 0 for _, _, d in trace)
    assert math.isfinite(trace[-1][2].retry_after_ms)
