#!/usr/bin/env python3
"""What the decision tap and the telemetry hub cost per Check, beside the untapped Check, in one run.

Two services over the memory store, identical except that one has the telemetry hub registered on its
decision tap. Rounds interleave them (untapped, tapped, untapped, ...) so drifting background load hits
both alike; each round times ``N`` inline Checks (the door's hot path, ``check_reply``) over a rotating
set of keys (so the hub's top-K does real replacements) with one denial in four. The table reports the
median ns per Check of each, the median ratio tapped/untapped of the same round and its spread, and the
added nanoseconds per Check.

With ``--grpc`` it also measures what an operator sees: ``throttlekit-server`` on the memory store with
the Monitor (hub on the tap, the default) beside the same server with ``--monitor off`` (untapped), and the
bare grpc.aio echo ceiling of ``scripts/bench_grpc.py``, all driven by the same h2load load in interleaved
rounds.

Usage: ``python scripts/bench_tap.py [--rounds 7] [--n 50000] [--grpc]``
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


def _service(hub: bool, noop: bool = False) -> RateLimiterService:
    svc = RateLimiterService(load_config(CONFIG), store=tk.MemoryStore())
    if hub:
        TelemetryHub().attach(svc)
    if noop:
        svc.tap.register(lambda event: None)
    return svc


def _grpc(rounds: int, seconds: float) -> None:
    import importlib.util
    import shutil
    import signal
    import subprocess
    import tempfile
    from pathlib import Path

    here = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location("bench_grpc", here / "bench_grpc.py")
    assert spec is not None and spec.loader is not None
    bg = importlib.util.module_from_spec(spec)
    sys.modules["bench_grpc"] = bg  # its dataclasses look their module up
    spec.loader.exec_module(bg)
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install -y nghttp2-client")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        frame, config = bg.bench_files(tmp)
        base = bg.server_args(config)
        rows: list[tuple[str, subprocess.Popen[str], int]] = []
        rates: dict[str, list[float]] = {}
        try:
            rows.append(("echo (ceiling)", *bg.start_echo()))
            rows.append(("Check, --monitor off (untapped)", *bg.spawn([*base, "--monitor", "off"])))
            rows.append(("Check, hub on the tap (default)", *bg.spawn(base)))
            for name, _, port in rows:
                bg.h2load(port, frame, None, n=3000, clients=bg.CLIENTS, streams=bg.STREAMS, rps=None)
                rates[name] = []
            _, rate = bg.h2load(
                rows[0][2], frame, None, n=4000, clients=bg.CLIENTS, streams=bg.STREAMS, rps=None
            )
            n = max(2000, int(rate * seconds))
            for r in range(rounds):
                for name, _, port in rows:
                    _, rate = bg.h2load(
                        port, frame, None, n=n, clients=bg.CLIENTS, streams=bg.STREAMS, rps=None
                    )
                    rates[name].append(rate)
                print(
                    f"grpc round {r + 1}/{rounds}: "
                    + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()),
                    file=sys.stderr,
                )
        finally:
            for _, proc, _ in rows:
                proc.send_signal(signal.SIGTERM)
            for _, proc, _ in rows:
                proc.wait(timeout=30)
    untapped = rates["Check, --monitor off (untapped)"]
    echo = rates["echo (ceiling)"]
    print(
        f"\nCheck over gRPC (memory store, h2load -c {bg.CLIENTS} -m {bg.STREAMS}, {rounds} rounds of {n})\n"
    )
    print("| server | Check/s (median) | ratio to echo | ratio to untapped (median) | spread |")
    print("|---|--:|--:|--:|--:|")
    for name, series in rates.items():
        to_echo = statistics.median(a / b for a, b in zip(series, echo))
        ratios = [a / b for a, b in zip(series, untapped)]
        print(
            f"| {name} | {statistics.median(series):,.0f} | {to_echo:.2f}x | {statistics.median(ratios):.2f}x "
            f"| {min(ratios):.2f}-{max(ratios):.2f}x |"
        )


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
    ap.add_argument("--grpc", action="store_true", help="also measure over gRPC (needs h2load)")
    args = ap.parse_args()
    plain, noop, tapped = _service(False), _service(False, noop=True), _service(True)
    keys = [f"user-{i}" for i in range(5000)]  # each key: 3 allows then denials (1 in 4 after warm-up)
    _round(plain, keys, 20_000)
    _round(noop, keys, 20_000)
    _round(tapped, keys, 20_000)
    base: list[float] = []
    seam: list[float] = []
    tap: list[float] = []
    for r in range(args.rounds):
        base.append(_round(plain, keys, args.n))
        seam.append(_round(noop, keys, args.n))
        tap.append(_round(tapped, keys, args.n))
        print(
            f"round {r + 1}/{args.rounds}: untapped {base[-1]:.0f} ns, tapped {tap[-1]:.0f} ns",
            file=sys.stderr,
        )
    print(f"\nIn-process inline Check (memory store), {args.rounds} rounds of {args.n}\n")
    print("| path | ns/Check (median) | ratio to untapped (median) | spread | added ns/Check (median) |")
    print("|---|--:|--:|--:|--:|")
    print(f"| untapped Check (ceiling) | {statistics.median(base):,.0f} | 1.00x | | |")
    for name, series in (("Check, a no-op observer on the tap", seam), ("Check, the hub on the tap", tap)):
        ratios = [t / b for t, b in zip(series, base)]
        added = [t - b for t, b in zip(series, base)]
        print(
            f"| {name} | {statistics.median(series):,.0f} | {statistics.median(ratios):.2f}x "
            f"| {min(ratios):.2f}-{max(ratios):.2f}x | {statistics.median(added):,.0f} |"
        )
    if args.grpc:
        _grpc(args.rounds, 3.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
