"""Measure the memory store's bytes per key for each strategy (docs/stores.md, "Bytes per key").

Each row inserts ``--keys`` keys of one strategy into a fresh store (in a fresh interpreter) and
reports the RSS delta per key after a full Lua and Python garbage collection, and the Lua heap per key.
Sliding-window rows use the default 10 buckets and the maximum (every bucket of the ring in use);
sliding-log rows a full log at the default shown and at ``SlidingWindowLog.MAX_LIMIT``.

    python scripts/bytes_per_key.py [--keys 100000] [--runtime luajit]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys

import throttlekit as tk

CASES = {
    "gcra": (lambda: tk.Gcra(10, "1h"), 1, 1),
    "tokenBucket": (lambda: tk.TokenBucket(10, 1), 1, 1),
    "fixedWindow": (lambda: tk.FixedWindow(10, "1h"), 1, 1),
    "quota (calendar-month)": (lambda: tk.Quota(10, "calendar-month"), 1, 1),
    "slidingWindow, 10 buckets, all in use": (lambda: tk.SlidingWindow(10**9, "1h", buckets=10), 11, 360_000),
    "slidingWindowLog, limit 10, full": (lambda: tk.SlidingWindowLog(10, "1h"), 1, 1),
    "slidingWindowLog, limit 100, full": (lambda: tk.SlidingWindowLog(100, "1h"), 1, 1),
}


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * 4096


def measure(case: str, keys: int, runtime: str) -> dict[str, float]:
    make, steps, step_ms = CASES[case]
    strategy = make()
    cost = strategy.limit if isinstance(strategy, tk.SlidingWindowLog) else 1
    clock = tk.ManualClock(1_700_000_000_000)
    store = tk.MemoryStore(clock=clock, runtime=runtime, max_keys=keys + 16)
    lim = tk.Limiter(strategy, store=store, clock=clock)
    lim.check("warm")
    gc.collect()
    heap0 = store.engine.collect()
    rss0 = _rss()
    for step in range(steps):
        for i in range(keys):
            lim.check(f"user:{i:08d}", cost)
        if step + 1 < steps:
            clock.advance(step_ms)
    heap1 = store.engine.collect()
    gc.collect()
    return {"rss": (_rss() - rss0) / keys, "heap": (heap1 - heap0) / keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--runtime", default="luajit")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.one:
        print(json.dumps(measure(opts.one, opts.keys, opts.runtime)))
        return
    print(f"{'strategy':<44}{'RSS B/key':>12}{'Lua heap B/key':>16}   ({opts.keys:,} keys, {opts.runtime})")
    for case in CASES:
        out = subprocess.run(
            [sys.executable, __file__, "--one", case, "--keys", str(opts.keys), "--runtime", opts.runtime],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        m = json.loads(out.stdout)
        print(f"{case:<44}{m['rss']:>12.0f}{m['heap']:>16.0f}", flush=True)


if __name__ == "__main__":
    main()
