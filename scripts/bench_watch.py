#!/usr/bin/env python3
"""Server memory under a flood of denials with Monitor ``Watch`` readers that never read, beside the same
flood with no reader at all, in one run.

Two ``throttlekit-server`` processes (memory store, a policy that denies everything after its first
request). On one, ``--readers`` Watch streams are opened and never read: the server's per-stream queue
and grpc's flow-control window fill, and every further denial is dropped for those streams. Both servers
then take the same flood (CheckMany batches of 1000 denied keys from a client thread each) for
``--seconds``; the server RSS (``/proc/<pid>/status`` VmRSS) is sampled every half second. The table
reports RSS at the start, the end and the peak, and the growth of the stalled-reader server beside the
growth of the server without readers (the ceiling: what the flood itself costs).

Usage: ``python scripts/bench_watch.py [--seconds 20] [--readers 4]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from throttlekit._proto import throttlekit_pb2 as pb
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_grpc  # noqa: E402  (the gRPC benchmarks' one server launcher)

CONFIG = "limiters:\n  deny: { strategy: fixedWindow, limit: 1, period: 1d }\n"


def _start(config: Path) -> tuple[subprocess.Popen[str], str]:
    proc, port = bench_grpc.spawn(bench_grpc.server_args(config))
    return proc, f"127.0.0.1:{port}"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _flood(target: str, stop: threading.Event, counter: list[int]) -> None:
    keys = [f"user-{i}" for i in range(1000)]
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.RateLimiterStub(ch)
        while not stop.is_set():
            stub.CheckMany(pb.CheckManyRequest(policy="deny", keys=keys), timeout=30)
            counter[0] += len(keys)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--readers", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        config = Path(d) / "deny.yaml"
        config.write_text(CONFIG)
        servers: dict[str, Any] = {}
        calls: list[Any] = []
        channels: list[grpc.Channel] = []
        try:
            for name in ("no reader (ceiling)", f"{args.readers} stalled Watch readers"):
                proc, target = _start(config)
                servers[name] = {"proc": proc, "target": target, "samples": [], "count": [0]}
            stalled = servers[f"{args.readers} stalled Watch readers"]
            for _ in range(args.readers):
                ch = grpc.insecure_channel(stalled["target"])
                channels.append(ch)
                calls.append(pb_grpc.MonitorStub(ch).Watch(pb.WatchRequest()))  # never read
            time.sleep(1.0)
            for s in servers.values():
                s["samples"].append(_rss_kib(s["proc"].pid))
            stop = threading.Event()
            floods = [
                threading.Thread(target=_flood, args=(s["target"], stop, s["count"]))
                for s in servers.values()
            ]
            for t in floods:
                t.start()
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                time.sleep(0.5)
                for s in servers.values():
                    s["samples"].append(_rss_kib(s["proc"].pid))
                done = ", ".join(
                    f"{n}: {s['count'][0]:,} denials, {s['samples'][-1] / 1024:.1f} MiB"
                    for n, s in servers.items()
                )
                print(f"{args.seconds - (end - time.monotonic()):.0f}s {done}", file=sys.stderr, flush=True)
            stop.set()
            for t in floods:
                t.join(60)
        finally:
            for c in calls:
                c.cancel()
            for ch in channels:
                ch.close()
            for s in servers.values():
                s["proc"].terminate()
                s["proc"].wait(timeout=30)
    print(f"\nDenial flood for {args.seconds:g} s (CheckMany x 1000 keys), server RSS in MiB\n")
    print("| server | denials | RSS start | RSS end | RSS peak | growth | growth vs ceiling |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    ceiling = None
    for name, s in servers.items():
        samples = s["samples"]
        growth = (samples[-1] - samples[0]) / 1024
        if ceiling is None:
            ceiling = growth
        extra = growth - ceiling
        print(
            f"| {name} | {s['count'][0]:,} | {samples[0] / 1024:.1f} | {samples[-1] / 1024:.1f} "
            f"| {max(samples) / 1024:.1f} | {growth:+.1f} | {extra:+.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
