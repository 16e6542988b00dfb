#!/usr/bin/env python3
"""What the decision tap and the telemetry hub cost per Check, beside the untapped Check, in one run.

Two services over the memory store, identical except that one has the telemetry hub registered on its
decision tap. Rounds interleave them (untapped, tapped, untapped, ...) so drifting background load hits
both alike; each round times ``N`` inline Checks (the door's hot path, ``check_reply``) over a rotating
set of keys (so the hub's top-K does real replacements) with one denial in four. The table reports the
median ns per Check of each, the median ratio tapped/untapped of the same round and its spread, and the
added nanoseconds per Check.

Usage: ``python scripts/bench_tap.py [--rounds 7] [--n 50000]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import throttlekit as tk
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService
from throttlekit.server._telemetry import TelemetryHub

CONFIG = "limiters:\n  api: { strategy: fixedWindow, limit: 3, period: 1h }\n"


def _service(hub: bool) -> RateLimiterService:
    svc = RateLimiterService(load_config(CONFIG), store=tk.MemoryStore())
    if hub:
        TelemetryHub().attach(svc)
    return svc


def _round(svc: RateLimiterService, keys: list[str], n: int) -> float:
    check = svc.policy("api").check_reply
    nkeys = len(keys)
    t0 = time.perf_counter_ns()
    for i in range(n):
        check(keys[i % nkeys], 1)
    return (time.perf_counter_ns() - t0) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=50_000)
    args = ap.parse_args()
    plain, tapped = _service(False), _service(True)
    keys = [f"user-{i}" for i in range(5000)]  # each key: 3 allows then denials (1 in 4 after warm-up)
    _round(plain, keys, 20_000)
    _round(tapped, keys, 20_000)
    base: list[float] = []
    tap: list[float] = []
    for r in range(args.rounds):
        base.append(_round(plain, keys, args.n))
        tap.append(_round(tapped, keys, args.n))
        print(
            f"round {r + 1}/{args.rounds}: untapped {base[-1]:.0f} ns, tapped {tap[-1]:.0f} ns",
            file=sys.stderr,
        )
    ratios = [t / b for t, b in zip(tap, base)]
    added = [t - b for t, b in zip(tap, base)]
    print("| path | ns/Check (median) | ratio to untapped (median) | spread | added ns/Check (median) |")
    print("|---|--:|--:|--:|--:|")
    print(f"| untapped Check (ceiling) | {statistics.median(base):,.0f} | 1.00x | | |")
    print(
        f"| Check with the hub on the tap | {statistics.median(tap):,.0f} | {statistics.median(ratios):.2f}x "
        f"| {min(ratios):.2f}-{max(ratios):.2f}x | {statistics.median(added):,.0f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
