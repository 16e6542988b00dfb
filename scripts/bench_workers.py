#!/usr/bin/env python3
"""Check/s of ``throttlekit-server --workers 1, 2, 4`` on Redis beside the single-process echo ceiling,
measured in the same run.

The ceiling is ``scripts/bench_grpc.py``'s bare grpc.aio echo server (one process: what one Python gRPC
process can do at all here). Each row is a supervisor with N workers sharing one port (SO_REUSEPORT) on
the same Redis (a fresh prefix per row), driven by the same h2load load (more connections than workers, so
the kernel spreads them). Rounds interleave the targets; each row reports the median Check/s, its median
ratio to the echo of the same round, and the spread of that ratio. After the rounds the script Peeks the
hot key of each row and checks that the workers together decided exactly the Checks h2load saw succeed.

On a machine whose cores are shared with other work, N workers cannot exceed the cores left to them:
read the ratios, not the absolute numbers.

Usage: ``python scripts/bench_workers.py [--rounds 3] [--seconds 3] [--workers 1,2,4] [--redis URL]``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_grpc", HERE / "bench_grpc.py")
assert _spec is not None and _spec.loader is not None
bench_grpc: Any = importlib.util.module_from_spec(_spec)
sys.modules["bench_grpc"] = bench_grpc  # its dataclasses look their module up
_spec.loader.exec_module(bench_grpc)

#: h2load's load: connections x concurrent streams per connection.
CLIENTS, STREAMS = 16, 8


def start_workers(config: Path, n: int, redis_url: str) -> tuple[Any, int]:
    args = bench_grpc.server_args(
        config, "--redis", redis_url, "--redis-prefix", f"benchw-{uuid.uuid4().hex[:8]}", "--workers", str(n)
    )
    return bench_grpc.spawn(args)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument(
        "--redis", default=os.environ.get("THROTTLEKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = ap.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install -y nghttp2-client")
    counts = [int(n) for n in args.workers.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        frame, config = bench_grpc.bench_files(tmp)
        try:
            proc, port = bench_grpc.start_echo()
            rows.append({"name": "echo, 1 process (ceiling)", "proc": proc, "port": port, "counts": False})
            for n in counts:
                proc, port = start_workers(config, n, args.redis)
                rows.append(
                    {"name": f"Check, redis, --workers {n}", "proc": proc, "port": port, "counts": True}
                )
            for r in rows:
                r["sent"], r["rates"] = 0, []

            def load(r: dict[str, Any], n: int) -> tuple[int, float]:
                return bench_grpc.h2load(  # type: ignore[no-any-return]
                    r["port"], frame, None, n=n, clients=CLIENTS, streams=STREAMS, rps=None
                )

            for r in rows:
                ok, _ = load(r, 3000)
                r["sent"] += ok
            _, rate = load(rows[0], 4000)
            n = max(2000, int(rate * args.seconds))
            for rnd in range(1, args.rounds + 1):
                parts = []
                for r in rows:
                    ok, rate = load(r, n)
                    r["sent"] += ok
                    r["rates"].append(rate)
                    parts.append(f"{r['name']} {rate:,.0f}/s")
                print(f"round {rnd}/{args.rounds}: " + ", ".join(parts), file=sys.stderr, flush=True)
            for r in rows:
                if r["counts"]:
                    seen = bench_grpc.counted(r["port"])
                    if seen != r["sent"]:
                        raise SystemExit(
                            f"{r['name']}: the workers decided {seen} Checks, {r['sent']} succeeded"
                        )
        finally:
            for r in rows:
                r["proc"].send_signal(signal.SIGTERM)
            for r in rows:
                r["proc"].wait(timeout=60)
    echo = rows[0]["rates"]
    print(
        f"\nCheck over gRPC, {os.cpu_count()} CPUs, h2load -c {CLIENTS} -m {STREAMS}, {args.rounds} rounds of "
        f"{n} requests, ALLOW path on one hot key\n"
    )
    print("| server | Check/s (median) | ratio to echo (median) | spread |")
    print("|---|--:|--:|--:|")
    for r in rows:
        ratios = [a / b for a, b in zip(r["rates"], echo)]
        print(
            f"| {r['name']} | {statistics.median(r['rates']):,.0f} | {statistics.median(ratios):.2f}x "
            f"| {min(ratios):.2f}-{max(ratios):.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
