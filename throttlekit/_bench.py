"""Side-by-side engine benchmarks (``tk bench`` / ``scripts/bench.py``).

Every comparison runs its contenders interleaved, in several short rounds, in one process, and reports
the median round: on a shared, noisy machine only ratios measured together mean anything.

Embedded: our ``Limiter.check`` on the memory store (LuaJIT and PUC Lua 5.1) per strategy, against the
``limits`` library's in-memory strategies; and at the ceiling: ``Limiter(Gcra).check`` against a
pure-Python GCRA on a dict returning the same :class:`~throttlekit.Decision` (time per decision), and
the memory store's bytes per GCRA key against a dict of floats (RSS delta over 400k keys, each measured
in a fresh subprocess). Redis: :mod:`throttlekit._bench_redis` (each path next to its ceiling: a raw
socket sending the same bytes).
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._types import Decision, decision_of, make_decision
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
    #: for memory rows: bytes per key (median round); ``per_sec``/``us`` are then 0
    bytes_per_key: float | None = None


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


def python_gcra(strategy: Gcra) -> Callable[..., Decision]:
    """The embedded ceiling: a GCRA in pure Python over a dict, returning the same public Decision the
    engine returns (the Lua's arithmetic, no TTLs, no validation). A benchmark yardstick only: no
    decision of the package is ever computed here."""
    period, limit, burst = strategy.period_ms, strategy.limit, strategy.burst
    t = period / limit
    tau = t * burst  # type: ignore[operator]
    state: dict[str, float] = {}
    get, floor, ceil, now_ns, make = state.get, math.floor, math.ceil, time.time_ns, make_decision

    def check(key: str, cost: float = 1) -> Decision:
        now = now_ns() // 1_000_000
        tat = get(key, now)
        tat_eff = tat if tat > now else now
        new_tat = tat_eff + t * cost
        allow_at = new_tat - tau
        if now < allow_at:
            remaining = max(0, floor((tau - (tat_eff - now)) / t))
            return make(False, burst, remaining, ceil(tat_eff), ceil(allow_at - now))  # type: ignore[arg-type]
        state[key] = new_tat
        return make(True, burst, max(0, floor((tau - (new_tat - now)) / t)), ceil(new_tat), 0)  # type: ignore[arg-type]

    return check


def lupa_floor(runtime: str = "luajit") -> Callable[..., Decision]:
    """The crossing floor of the embedded check: the limiter's call shape into Lua (key, the server-time
    sentinel, cost in; five numbers out) on a Lua function that computes nothing, then the same public
    Decision. What any decision made in Lua through lupa costs at least, whatever the Lua does; a
    benchmark yardstick only (it answers constants)."""
    from ._lupa import RUNTIMES

    rt = RUNTIMES[runtime].LuaRuntime(
        register_eval=False, register_builtins=False, unpack_returned_tuples=True, encoding="utf-8"
    )
    run = rt.eval("function(k, now, cost) return 1, 1000000, 999999, 1796026576168, 0 end")
    of = decision_of

    def check(key: str, cost: float = 1) -> Decision:
        return of(run(key, -1, cost))

    return check


def _spread(
    group: str, contenders: dict[str, Callable[[int], None]], base: str, n: int, rounds: int
) -> list[Row]:
    """Like :func:`_compare`, plus each row's per-round ratio to ``base`` (min..max over rounds)."""
    for fn in contenders.values():
        fn(max(1, n // 10))
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            samples[name].append(_rate(fn, n))
    rows = []
    for name, vals in samples.items():
        rate = statistics.median(vals)
        row = Row(group, name, rate, 1e6 / rate)
        if name != base:
            ratios = [v / b for v, b in zip(vals, samples[base])]
            row.baseline, row.ratio, row.spread = base, statistics.median(ratios), (min(ratios), max(ratios))
        rows.append(row)
    return rows


#: The row of :func:`lupa_floor` (LuaJIT) in the embedded group.
LUPA_FLOOR = "lupa crossing floor: a Lua function answering constants (same call shape, same Decision)"


def ceiling_rows(n: int = 50_000, rounds: int = 9, keys: int = 400_000, mem_rounds: int = 3) -> list[Row]:
    """Embedded at the ceiling: ``Limiter(Gcra).check`` (both runtimes) vs :func:`python_gcra`, and the
    memory store's bytes per GCRA key vs a dict (RSS delta over ``keys`` keys, fresh subprocesses)."""
    gcra = Gcra(1_000_000, "1s")
    ceiling = "pure-Python GCRA on a dict (same Decision)"
    contenders: dict[str, Callable[[int], None]] = {
        f"throttlekit Limiter(Gcra).check ({rt})": _loop_check(
            Limiter(gcra, store=MemoryStore(runtime=rt, max_keys=1000)), "bench-gcra"
        )
        for rt in ("luajit", "lua51")
    }
    ceiling_check, floor_check = python_gcra(gcra), lupa_floor("luajit")

    def ceiling_loop(count: int) -> None:
        for _ in range(count):
            ceiling_check("bench-gcra")

    def floor_loop(count: int) -> None:
        for _ in range(count):
            floor_check("bench-gcra")

    contenders[LUPA_FLOOR] = floor_loop
    contenders[ceiling] = ceiling_loop
    rows = _spread("embedded at the ceiling", contenders, ceiling, n, rounds)
    rows += per_key_rows(keys, mem_rounds)
    return rows


def per_key_rows(keys: int = 400_000, rounds: int = 3) -> list[Row]:
    """Bytes per GCRA key on the memory store (each runtime) vs a dict of floats, RSS delta / keys."""
    base = f"Python dict of floats ({keys:,} keys)"
    which = {f"memory store, gcra keys ({rt}, {keys:,} keys)": rt for rt in ("luajit", "lua51")}
    samples: dict[str, list[float]] = {name: [] for name in [*which, base]}
    for _ in range(rounds):
        for name in samples:
            samples[name].append(_per_key_subprocess(which.get(name, "dict"), keys))
    rows = []
    for name, vals in samples.items():
        row = Row("embedded memory per key (RSS)", name, 0.0, 0.0, bytes_per_key=statistics.median(vals))
        if name != base:
            ratios = [v / b for v, b in zip(vals, samples[base])]
            row.baseline, row.ratio, row.spread = base, statistics.median(ratios), (min(ratios), max(ratios))
        rows.append(row)
    return rows


def _per_key_subprocess(kind: str, keys: int) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "throttlekit._bench", "per-key", kind, str(keys)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(json.loads(out.stdout)["bytes_per_key"])


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * 4096


def per_key_bytes(kind: str, keys: int) -> float:
    """RSS delta per key after inserting ``keys`` GCRA keys (``kind`` a runtime) or dict entries."""
    import gc

    # each key string is made inside the measured loop: the dict keeps it, the Lua keyspace its own copy
    if kind == "dict":
        d: dict[str, float] = {}
        gc.collect()
        before = _rss()
        for i in range(keys):
            d[f"user:{i:08d}"] = 1.7e12 + i * 0.5
        gc.collect()
        return (_rss() - before) / keys
    store = MemoryStore(max_keys=keys + 16, runtime=kind)
    check = Limiter(Gcra(10, "1h"), store=store).check
    check("warm")
    gc.collect()
    store.engine.collect()
    before = _rss()
    for i in range(keys):
        check(f"user:{i:08d}")
    store.engine.collect()
    gc.collect()
    return (_rss() - before) / keys


def run_bench(
    redis_url: str | None, quick: bool = False, progress: Callable[[str], None] | None = None
) -> list[Row]:
    """Every table; ``quick`` shrinks the rounds (a smoke run for tests); ``progress`` gets a line per group."""
    n_mem, n_red, rounds = (2_000, 200, 2) if quick else (50_000, 3_000, 5)
    say = progress or (lambda _line: None)
    say("embedded vs the limits library (informative) ...")
    try:
        rows = embedded(n_mem, rounds)
    except ImportError:  # the bench extra; every other row needs nothing more
        say("  (limits not installed: skipped; pip install 'throttlekit-server[bench]')")
        rows = []
    say("embedded at the ceiling (check vs a Python GCRA; bytes per key vs a dict) ...")
    rows += ceiling_rows(n_mem, 3 if quick else 9, 20_000 if quick else 400_000, 1 if quick else 3)
    if redis_url:
        from ._bench_redis import redis_rows

        rows += redis_rows(redis_url, n_red, rounds, progress=progress)
    return rows


# the per-key measurement runs in a fresh interpreter: python -m throttlekit._bench per-key <kind> <keys>
if __name__ == "__main__":
    if sys.argv[1:2] == ["per-key"]:
        print(json.dumps({"bytes_per_key": per_key_bytes(sys.argv[2], int(sys.argv[3]))}))
