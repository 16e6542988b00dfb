"""Benchmark a leased two-tier Check against the same strategy without twoTier, both on Redis.

    /tmp/venv/bin/python scripts/bench_twotier.py [--seconds 2] [--rounds 3] [--batches 1,10,50]
        [--redis-url redis://127.0.0.1:6379/0] [--concurrency 1] [--json]

One client (one asyncio task by default: serial awaits, as the upstream's BENCH.md measures) checks one
hot key in a closed loop, ALLOW path (a fixed window of 1 minute with a limit no run can reach). Both paths use the server's
Redis transport (``PipelinedRedisStore``). Rows: the plain policy (``AsyncLimiter``: one EVALSHA per
decision) and ``TwoTierLimiter`` leased, window-coupled, for each batch. Redis round trips are counted
twice: EVALSHA calls made by the store (a counting proxy) and Redis' own ``INFO commandstats`` delta
(equal when nothing else uses the server). Rounds are interleaved; the median is reported.

With ``--grpc`` the same comparison goes through the gRPC door instead: one server process on Redis with
the plain and the leased policies, driven by h2load (``nghttp2-client``) from one connection, serially
and with 16 Checks in flight; round trips are Redis' ``INFO commandstats`` delta over the phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

import throttlekit as tk
from throttlekit.server import redis_store

STRATEGY = tk.FixedWindow(
    10**12, "1m"
)  # always admits; reset_at = the window end (windowCoupled keeps credits)


class Counting:
    """Counts the EVALSHA round trips a store makes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.prefix = inner.prefix
        self.calls = 0

    async def aeval(self, name: str, keys: Sequence[str], now: float, args: Sequence[Any]) -> Any:
        self.calls += 1
        return await self.inner.aeval(name, keys, now, args)

    async def aeval_many(
        self, name: str, keys: Sequence[Sequence[str]], now: float, args: Sequence[Any]
    ) -> Any:
        self.calls += len(keys)
        return await self.inner.aeval_many(name, keys, now, args)

    async def adelete(self, key: str) -> None:
        await self.inner.adelete(key)

    async def aclose(self) -> None:
        await self.inner.aclose()


def evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def one(label: str, batch: int | None, args: argparse.Namespace, info: redis.Redis) -> dict[str, Any]:
    store = Counting(redis_store(args.redis_url, f"tkbench-{uuid.uuid4().hex[:8]}"))
    limiter: Any
    if batch is None:
        limiter = tk.AsyncLimiter(STRATEGY, store=store)
    else:
        limiter = tk.TwoTierLimiter(STRATEGY, store=store, batch=batch, window_coupled=True)
    check = limiter.check
    for _ in range(200):  # warm up: connection, SCRIPT LOAD, first lease
        await check("hot")
    store.calls = 0
    before = evalsha_calls(info)
    done = 0
    deadline = time.perf_counter() + args.seconds

    async def worker() -> None:
        nonlocal done
        n = 0
        while True:
            for _ in range(100):
                await check("hot")
            n += 100
            if time.perf_counter() >= deadline:
                break
        done += n

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - t0
    server_calls = evalsha_calls(info) - before
    if batch is not None:
        await limiter.aclose()
    await store.aclose()
    return {
        "path": label,
        "batch": batch,
        "decisions_per_s": done / elapsed,
        "round_trips_per_100": 100 * store.calls / done,
        "redis_evalsha_per_100": 100 * server_calls / done,
        "decisions": done,
    }


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    info = redis.Redis.from_url(args.redis_url)
    plan: list[tuple[str, int | None]] = [("plain fixedWindow (no twoTier)", None)]
    plan += [("twoTier leased", int(b)) for b in args.batches.split(",")]
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for label, batch in plan:
            r = await one(label, batch, args, info)
            runs.setdefault(f"{label}/{batch}", []).append(r)
    info.close()
    rows = []
    for rs in runs.values():
        row = dict(rs[0])
        for k in ("decisions_per_s", "round_trips_per_100", "redis_evalsha_per_100"):
            row[k] = statistics.median(r[k] for r in rs)
        rows.append(row)
    return rows


def grpc_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Check through the gRPC door: plain vs leased policies on one server process over Redis."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_grpc import grpc_frame, h2load, start_server

    from throttlekit._proto import throttlekit_pb2 as pb

    batches = [int(b) for b in args.batches.split(",")]
    strategy = "strategy: fixedWindow, limit: 1000000000000000, period: 1m"
    lines = ["limiters:", f"  plain: {{ {strategy} }}"]
    lines += [
        f"  leased{b}: {{ {strategy}, twoTier: {{ batch: {b}, windowCoupled: true }} }}" for b in batches
    ]
    info = redis.Redis.from_url(args.redis_url)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        config = tmp / "bench.yaml"
        config.write_text("\n".join(lines) + "\n")
        proc, port = start_server(config, "redis", args.redis_url)
        try:
            for streams in (1, 16):
                n = int((2500 if streams == 1 else 9000) * args.seconds)
                for policy, batch in [("plain", None), *((f"leased{b}", b) for b in batches)]:
                    frame = tmp / f"{policy}.bin"
                    frame.write_bytes(
                        grpc_frame(pb.CheckRequest(policy=policy, key="hot").SerializeToString())
                    )
                    log = tmp / "h2load.log"
                    h2load(port, frame, log, n=500, clients=1, streams=streams, rps=None)  # warm up
                    before = evalsha_calls(info)
                    ok, rate = h2load(port, frame, log, n=n, clients=1, streams=streams, rps=None)
                    calls = evalsha_calls(info) - before
                    rows.append(
                        {
                            "path": f"gRPC Check, {streams} in flight: "
                            + ("plain" if batch is None else "twoTier leased"),
                            "batch": batch,
                            "decisions_per_s": rate,
                            "round_trips_per_100": 100 * calls / ok,
                            "redis_evalsha_per_100": 100 * calls / ok,
                            "decisions": ok,
                        }
                    )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            info.close()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    out: list[str] = [
        "| path | batch | decisions/s | vs plain | Redis round trips / 100 decisions | fewer round trips |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        if r["batch"] is None:
            base = r
        rt = r["round_trips_per_100"]
        fewer = base["round_trips_per_100"] / rt if rt else float("inf")
        out.append(
            f"| {r['path']} | {r['batch'] or '-'} | {r['decisions_per_s']:,.0f} | "
            f"{r['decisions_per_s'] / base['decisions_per_s']:.1f}x | {rt:.2f} "
            f"(INFO: {r['redis_evalsha_per_100']:.2f}) | {fewer:.0f}x |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", default="1,10,50")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--concurrency", type=int, default=1, help="asyncio tasks sharing the one client")
    p.add_argument("--grpc", action="store_true", help="through the gRPC door (h2load) instead")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    result = grpc_rows(a) if a.grpc else asyncio.run(main(a))
    print(json.dumps(result, indent=1) if a.json else table(result))
