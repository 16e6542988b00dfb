#!/usr/bin/env python3
"""Benchmark ``RateLimiter.Check`` through the gRPC door, for the memory store and Redis.

The load generator is h2load (Debian ``nghttp2-client``; ``apt-get install -y nghttp2-client``), a C
HTTP/2 client sending a prebuilt gRPC frame, so the generator costs the 2-core machine little and the
server is what saturates. Per store it runs:

* ``saturate``: 4 connections x 16 concurrent streams, as fast as the server answers;
* ``paced``: the target rate (memory 5,000/s, Redis 3,000/s) from 10 connections, latency at that load;
* ``500/s``: one connection paced at 500 requests/s (the issue's latency target).

Latency percentiles come from h2load's per-request log (time to the end of the response). The policy
is a fixed window with a huge limit, so every Check takes the ALLOW path on one hot key; after each
store's runs the script Peeks the key and checks that the server counted exactly the requests h2load
saw succeed (HTTP/2 200 alone would not prove a gRPC OK).

Usage: ``python scripts/bench_grpc.py [--seconds 4] [--redis redis://127.0.0.1:6379/0] [--stores memory,redis]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc

from throttlekit._proto import throttlekit_pb2 as pb
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc

LIMIT = 10**15
CONFIG = f"limiters:\n  bench: {{ strategy: fixedWindow, limit: {LIMIT}, period: 1d }}\n"
TARGET_RPS = {"memory": 5000, "redis": 3000}


@dataclass
class Result:
    store: str
    phase: str
    requests: int
    ok: int
    rps: float
    p50_ms: float
    p99_ms: float


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length, bytes."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def start_server(config: Path, store: str, redis_url: str) -> tuple[subprocess.Popen[str], int]:
    args = [
        sys.executable,
        "-c",
        "import sys; from throttlekit.cli import server_main; sys.exit(server_main())",
        "--config",
        str(config),
        "--port",
        "0",
        "--log-level",
        "warning",
    ]
    if store == "redis":
        args += ["--redis", redis_url, "--redis-prefix", f"bench-{uuid.uuid4().hex[:8]}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    port = int(line.split("listening on ", 1)[1].split(" ", 1)[0].rsplit(":", 1)[1])
    return proc, port


def h2load(
    port: int, frame: Path, log: Path, *, n: int, clients: int, streams: int, rps: int | None
) -> tuple[int, float]:
    """Run h2load; return (succeeded requests, requests per second)."""
    if log.exists():
        log.unlink()  # h2load appends
    args = [
        "h2load",
        "-n",
        str(n),
        "-c",
        str(clients),
        "-m",
        str(streams),
        "-d",
        str(frame),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        f"--log-file={log}",
    ]
    if rps:
        args += ["--rps", str(rps)]
    out = subprocess.run(
        [*args, f"http://127.0.0.1:{port}/throttlekit.v1.RateLimiter/Check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ok = rate = 0.0
    for line in out.splitlines():
        if line.startswith("finished in"):
            rate = float(line.split(",")[1].split("req/s")[0])
        if line.startswith("requests:"):
            ok = int(line.split(",")[3].split()[0])
    return int(ok), rate


def percentiles(log: Path) -> tuple[float, float]:
    lat = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.strip())
    return lat[len(lat) // 2] / 1000, lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000


def counted(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        d = pb_grpc.RateLimiterStub(ch).Peek(pb.PeekRequest(policy="bench", key="hot"), timeout=5).decision
    return LIMIT - d.remaining


def bench_store(store: str, seconds: float, redis_url: str, tmp: Path, frame: Path) -> list[Result]:
    config = tmp / "bench.yaml"
    config.write_text(CONFIG)
    proc, port = start_server(config, store, redis_url)
    log = tmp / "h2load.log"
    results: list[Result] = []
    sent = 0
    try:
        h2load(port, frame, log, n=2000, clients=4, streams=16, rps=None)  # warm up
        sent += 2000
        target = TARGET_RPS[store]
        phases = [
            ("saturate", dict(n=int(9000 * seconds), clients=4, streams=16, rps=None)),
            (f"paced {target}/s", dict(n=int(target * seconds), clients=10, streams=1, rps=target // 10)),
            ("paced 500/s", dict(n=int(500 * seconds), clients=1, streams=1, rps=500)),
        ]
        for name, kw in phases:
            ok, rate = h2load(port, frame, log, **kw)  # type: ignore[arg-type]
            sent += ok
            p50, p99 = percentiles(log)
            results.append(Result(store, name, kw["n"], ok, rate, p50, p99))  # type: ignore[arg-type]
        seen = counted(port)
        if seen != sent:
            raise SystemExit(f"{store}: the server decided {seen} Checks but h2load saw {sent} succeed")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of each measured phase")
    ap.add_argument(
        "--redis", default=os.environ.get("THROTTLEKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    ap.add_argument("--stores", default="memory,redis")
    args = ap.parse_args()
    if shutil.which("h2load") is None:
        print("h2load not found: apt-get install -y nghttp2-client", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        frame = tmp / "check.bin"
        frame.write_bytes(grpc_frame(pb.CheckRequest(policy="bench", key="hot", cost=1).SerializeToString()))
        results = [
            r for s in args.stores.split(",") for r in bench_store(s, args.seconds, args.redis, tmp, frame)
        ]
    print(f"\nCheck over gRPC, {os.cpu_count()} CPUs, h2load load generator, {args.seconds:g} s per phase\n")
    print("| store | phase | requests ok | Check/s | p50 ms | p99 ms |")
    print("|---|---|--:|--:|--:|--:|")
    for r in results:
        print(f"| {r.store} | {r.phase} | {r.ok} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
