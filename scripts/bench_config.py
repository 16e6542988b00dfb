"""Benchmark loading a policy file against parsing the same text with ``yaml.safe_load``.

    .venv/bin/python scripts/bench_config.py [--sizes 5000,10000,20000,167000] [--rounds 3] [--timeout 120]

For each size N the script writes one YAML text of N policies (the six strategies, a twoTier and a
fleetBudget in turn, each on its own prefix, the policy name), then times, interleaved over rounds,
``throttlekit.config.load_config(text)`` and ``yaml.safe_load(text)`` (the ceiling: the loader cannot be
faster than parsing the text it reads). Each row prints the median time of both, the ratio
``load / safe_load`` and its spread over the rounds, then the same text parsed by libyaml's
``CSafeLoader`` (the parser the loader itself uses when installed) and ``load / that``: the loader's cost
beyond parsing. Times are this process's CPU seconds (``time.process_time``), which a machine shared with
other work disturbs far less than wall time. A size whose first load exceeds ``--timeout`` seconds is
reported as such and the larger sizes are skipped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import yaml

from throttlekit.config import load_config

_SHAPES = (
    "{{strategy: gcra, limit: {n}, period: 1m, burst: 20}}",
    "{{strategy: tokenBucket, capacity: {n}, refillPerSec: 5}}",
    "{{strategy: fixedWindow, limit: {n}, period: 1h}}",
    "{{strategy: slidingWindow, limit: {n}, period: 5m, buckets: 30}}",
    "{{strategy: slidingWindowLog, limit: {n}, period: 10s}}",
    "{{strategy: quota, limit: {n}, resetCadence: calendar-month}}",
    "{{strategy: fixedWindow, limit: {n}, period: 1m, twoTier: {{mode: leased, batch: 10}}}}",
    "{{fleetBudget: {{budget: {n}, windowMs: 60000}}}}",
)


def policy_text(n: int) -> str:
    """A valid YAML policy file of ``n`` policies."""
    lines = ["version: 1", "limiters:"]
    for i in range(n):
        shape = _SHAPES[i % len(_SHAPES)]
        lines.append(f"  p{i}: " + shape.format(n=100 + i % 900))
    return "\n".join(lines) + "\n"


def _libyaml(text: str) -> object:
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _time(fn: object, text: str) -> float:
    t0 = time.process_time()
    fn(text)  # type: ignore[operator]
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="5000,10000,20000,167000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"{'policies':>9} {'bytes':>10} {'load_config':>14} {'safe_load':>12} {'ratio':>7} {'spread':>13}")
    for n in sizes:
        text = policy_text(n)
        first = _time(load_config, text)
        if first > args.timeout:
            print(
                f"{n:>9} {len(text):>10} {first:>14.2f}  (over --timeout {args.timeout:g} s; larger sizes skipped)"
            )
            break
        loads, parses, ratios, clib, cratios = [first], [], [], [], []
        for r in range(args.rounds):
            parses.append(_time(yaml.safe_load, text))
            clib.append(_time(_libyaml, text))
            if r:
                loads.append(_time(load_config, text))
            ratios.append(loads[-1] / parses[-1])
            cratios.append(loads[-1] / clib[-1])
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        print(
            f"{n:>9} {len(text):>10} {statistics.median(loads):>14.3f} {statistics.median(parses):>12.3f} "
            f"{statistics.median(ratios):>7.2f} {spread:>13} {statistics.median(clib):>10.3f} "
            f"{statistics.median(cratios):>7.2f}",
            flush=True,
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
