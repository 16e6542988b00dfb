#!/usr/bin/env python3
"""Instructions per embedded check, counted by callgrind: ``Limiter(Gcra).check`` beside its ceiling, a
pure-Python GCRA on a dict returning the same Decision (``throttlekit._bench.python_gcra``), and beside
the lupa crossing floor (``throttlekit._bench.lupa_floor``: the same call into Lua on a function that
computes nothing), which shows how much of the gap is the crossing itself.

An instruction count does not move with the machine's load (a timed ratio on a shared 2-core machine
swings by 0.2 and more), so this is the figure to compare before and after a change to the hot path.
Each contender runs in a fresh process under ``valgrind --tool=callgrind`` twice, with ``--small`` and
``--large`` checks after a warm-up; the difference over ``large - small`` cancels start-up and exit.

Usage: ``python scripts/bench_instructions.py [--small 2000] [--large 12000]`` (needs valgrind:
``apt-get install -y valgrind``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CONTENDERS = {
    "throttlekit Limiter(Gcra).check (luajit)": "luajit",
    "throttlekit Limiter(Gcra).check (lua51)": "lua51",
    "lupa crossing floor: a Lua function answering constants (same call shape, same Decision)": "floor",
    "pure-Python GCRA on a dict (same Decision)": "python",
}


def run_checks(kind: str, n: int) -> None:
    """The measured process: warm up, then ``n`` checks of one hot key."""
    from throttlekit import Gcra, Limiter, MemoryStore
    from throttlekit._bench import lupa_floor, python_gcra

    strategy = Gcra(1_000_000, "1s")
    if kind == "python":
        check = python_gcra(strategy)
    elif kind == "floor":
        check = lupa_floor("luajit")
    else:
        check = Limiter(strategy, store=MemoryStore(max_keys=1000, runtime=kind)).check
    for _ in range(3000):
        check("bench-gcra")
    for _ in range(n):
        check("bench-gcra")


def instructions(kind: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--run",
                kind,
                str(n),
            ],
            check=True,
            capture_output=True,
        )
        text = out.read_text(errors="replace")
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("summary:"))


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--run", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=12000)
    args = ap.parse_args()
    if args.run:
        run_checks(args.run[0], int(args.run[1]))
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind: apt-get install -y valgrind")
    per: dict[str, float] = {}
    for name, kind in CONTENDERS.items():
        print(f"{name} ...", file=sys.stderr, flush=True)
        per[name] = (instructions(kind, args.large) - instructions(kind, args.small)) / (
            args.large - args.small
        )
    ceiling = per["pure-Python GCRA on a dict (same Decision)"]
    print(f"\nInstructions per check (callgrind; {args.large} - {args.small} checks)\n")
    print("| contender | instructions per check | ratio (ceiling/ours) |")
    print("|---|--:|--:|")
    for name, value in per.items():
        print(f"| {name} | {value:,.0f} | {ceiling / value:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
