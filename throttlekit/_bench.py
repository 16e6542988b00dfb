"""Side-by-side engine benchmarks (``tk bench`` / ``scripts/bench.py``).

Every comparison runs its contenders interleaved, in several short rounds, in one process, and reports
the median round: on a shared, noisy machine only ratios measured together mean anything.

Embedded: our ``Limiter.check`` on the memory store (LuaJIT and PUC Lua 5.1) per strategy, against the
``limits`` library's in-memory strategies. Redis: :mod:`throttlekit._bench_redis` (each path next to its
ceiling: a raw socket sending the same bytes).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .limiter import Limiter
from .stores import MemoryStore
from .strategies import FixedWindow, Gcra, Quota, SlidingWindow, SlidingWindowLog, Strategy, TokenBucket

__all__ = ["Row", "run_bench"]

# Generous limits so the steady state is "allowed" (the common case) for every contender.
STRATEGIES: dict[str, Strategy] = {
    "gcra": Gcra(1_000_000, "1s"),
    "tokenBucket": TokenBucket(1_000_000, 1_000_000),
    "fixedWindow": FixedWindow(1_000_000_000, "1h"),
    "slidingWindow": SlidingWindow(1_000_000_000, "1h", buckets=10),
    "slidingWindowLog": SlidingWindowLog(SlidingWindowLog.MAX_LIMIT, "1ms"),
    "quota": Quota(1_000_000_000, "calendar-month"),
}


@dataclass
class Row:
    """One measured contender: decisions per second and microseconds per decision (median round)."""

    group: str
    name: str
    per_sec: float
    us: float
    baseline: str = ""
    ratio: float | None = None
    #: min..max over rounds of the per-round ratio to ``baseline`` (rows measured against a ceiling)
    spread: tuple[float, float] | None = None


def _rate(fn: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - start)


def _compare(group: str, contenders: dict[str, Callable[[int], None]], n: int, rounds: int) -> list[Row]:
    """Interleave the contenders for ``rounds`` rounds of ``n`` decisions; median per contender."""
    for fn in contenders.values():  # warm-up (script load, JIT, connection)
        fn(max(1, n // 10))
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            samples[name].append(_rate(fn, n))
    rows = []
    for name, vals in samples.items():
        rate = statistics.median(vals)
        rows.append(Row(group, name, rate, 1e6 / rate))
    return rows


def _loop_check(limiter: Limiter, key: str = "bench") -> Callable[[int], None]:
    check = limiter.check

    def run(n: int) -> None:
        for _ in range(n):
            check(key)

    return run


def _limits_hit(limiter: Any, item: Any) -> Callable[[int], None]:
    hit = limiter.hit

    def run(n: int) -> None:
        for _ in range(n):
            hit(item, "bench")

    return run


def embedded(n: int = 50_000, rounds: int = 5) -> list[Row]:
    """Our memory store per strategy (LuaJIT, Lua 5.1) vs the ``limits`` library's memory strategies."""
    from limits import RateLimitItemPerHour
    from limits.storage import MemoryStorage
    from limits.strategies import (
        FixedWindowRateLimiter,
        MovingWindowRateLimiter,
        SlidingWindowCounterRateLimiter,
    )

    rows: list[Row] = []
    item = RateLimitItemPerHour(1_000_000_000)
    lim_fixed = FixedWindowRateLimiter(MemoryStorage())
    lim_sliding = SlidingWindowCounterRateLimiter(MemoryStorage())
    lim_moving = MovingWindowRateLimiter(MemoryStorage())
    moving_item = RateLimitItemPerHour(1000)

    contenders: dict[str, Callable[[int], None]] = {}
    for name, strategy in STRATEGIES.items():
        for runtime in ("luajit", "lua51"):
            contenders[f"throttlekit {name} ({runtime})"] = _loop_check(
                Limiter(strategy, store=MemoryStore(runtime=runtime, max_keys=1000)), f"bench-{name}"
            )
    contenders["limits FixedWindow (memory)"] = _limits_hit(lim_fixed, item)
    contenders["limits SlidingWindowCounter (memory)"] = _limits_hit(lim_sliding, item)
    contenders["limits MovingWindow (memory, limit 1000)"] = _limits_hit(lim_moving, moving_item)
    rows = _compare("embedded", contenders, n, rounds)
    base = next(r for r in rows if r.name == "limits FixedWindow (memory)")
    for r in rows:
        if r.name.startswith("throttlekit"):
            r.baseline, r.ratio = base.name, r.per_sec / base.per_sec
    return rows


def run_bench(
    redis_url: str | None, quick: bool = False, progress: Callable[[str], None] | None = None
) -> list[Row]:
    """Every table; ``quick`` shrinks the rounds (a smoke run for tests); ``progress`` gets a line per group."""
    n_mem, n_red, rounds = (2_000, 200, 2) if quick else (50_000, 3_000, 5)
    if progress is not None:
        progress("embedded ...")
    rows = embedded(n_mem, rounds)
    if redis_url:
        from ._bench_redis import redis_rows

        rows += redis_rows(redis_url, n_red, rounds, progress=progress)
    return rows
