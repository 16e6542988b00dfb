"""Benchmark replay throughput: arrivals per second through a plan's cold record, beside its ceiling.

    .venv/bin/python scripts/bench_replay.py [--arrivals 200000] [--keys 1000] [--rounds 5] [--json]

Rows, measured interleaved in one run (median of rounds, spread = (max - min) / median):

- ``ceiling: raw embedded check loop`` — the memory store's bound gcra call in a plain ``for`` loop over
  the same keys at a fixed instant: the Lua crossing alone, no clock.
- ``record (cold record of one policy)`` — :func:`throttlekit.forensics.record`: a fresh store, the clock
  set to each arrival's instant, every reply kept.
- ``plan (record + replay + fold, per arrival)`` — one policy of ``make_plan``: two runs and the fold,
  counted per arrival of the corpus.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import throttlekit as tk
from throttlekit.forensics import Trace, classify, make_plan, record
from throttlekit.stores.base import join_prefix

STRATEGY = tk.Gcra(100, "1s", burst=20)


def arrivals(n: int, keys: int) -> list[tuple[str, float, int]]:
    return [(f"tenant-{i % keys}", 1, 1_700_000_000_000 + i // 10) for i in range(n)]


def ceiling(arr: list[tuple[str, float, int]]) -> None:
    store = tk.MemoryStore(clock=tk.ManualClock(1_700_000_000_000), max_keys=max(1024, len(arr)))
    run = store.bind(STRATEGY.check_transform, STRATEGY.params)
    kp = join_prefix("p")
    now = 1_700_000_000_000
    for key, cost, _ in arr:
        run(kp + key, now, cost)
    store.close()


def one_record(arr: list[tuple[str, float, int]]) -> None:
    record(STRATEGY, "p", arr)


def make_planner(arr: list[tuple[str, float, int]]) -> Callable[[Any], None]:
    cur = classify({"limiters": {"p": {"strategy": "gcra", "limit": 100, "period": "1s", "burst": 20}}}, "c")
    cand = classify({"limiters": {"p": {"strategy": "gcra", "limit": 50, "period": "1s", "burst": 20}}}, "n")
    corpus = {"p": [Trace(arr)]}

    def run(_: Any) -> None:
        make_plan(cur, cand, corpus)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arrivals", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    arr = arrivals(args.arrivals, args.keys)
    rows: dict[str, Callable[[Any], None]] = {
        "ceiling: raw embedded check loop": ceiling,
        "record (cold record of one policy)": one_record,
        "plan (record + replay + fold, per arrival)": make_planner(arr),
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, fn in rows.items():
            t = time.perf_counter()
            fn(arr)
            times[name].append(args.arrivals / (time.perf_counter() - t))
    top = statistics.median(times["ceiling: raw embedded check loop"])
    out = []
    for name, rates in times.items():
        med = statistics.median(rates)
        out.append(
            {
                "name": name,
                "arrivals_per_s": round(med),
                "ratio": round(med / top, 3),
                "spread": round((max(rates) - min(rates)) / med, 3),
            }
        )
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{args.arrivals} arrivals over {args.keys} keys, {args.rounds} rounds (median)")
    print(f"{'row':<46} {'arrivals/s':>12} {'x ceiling':>10} {'spread':>8}")
    for r in out:
        print(f"{r['name']:<46} {r['arrivals_per_s']:>12,} {r['ratio']:>10.3f} {r['spread']:>8.1%}")


if __name__ == "__main__":
    main()
