#!/usr/bin/env python3
"""Federation on Redis, each row beside its ceiling in the same run.

1. **Check/s**: a ``federated:`` fixedWindow against the plain fixedWindow policy on the same Redis (the
   ceiling: one EVALSHA per decision), both through the service's Check path (``check_reply``, as the
   gRPC door calls it, without the gRPC transport), ``--conc`` checks in flight on one event loop. Rounds
   alternate plain, federated, plain, ... so drifting background load hits both alike. The budget is
   large (never spent), keys rotate over ``--keys``: every federated key leases ``batch`` units at a time.
2. **Coordinator round trips per 100 decisions** at batch 1, 16 and 64 (``fed_lease`` calls counted by
   the limiter; the ceiling is batch 1: one per decision). Also the Redis commands the Redis server counted
   per 100 decisions (``INFO commandstats``), plain policy beside it.

The table reports medians, the spread over rounds (min..max) and the ratio federated/plain of each round.

Usage: ``python scripts/bench_federation.py [--redis redis://127.0.0.1:6379/0] [--rounds 5] [--n 4000]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from throttlekit.config import load_config
from throttlekit.server import RateLimiterService, redis_store

BIG = 10**12  # a budget no run spends


def _config(batch: int) -> str:
    return (
        "limiters:\n"
        f"  plain: {{ strategy: fixedWindow, limit: {BIG}, period: 1h }}\n"
        f"  fed: {{ strategy: fixedWindow, limit: {BIG}, period: 1h, federated: {{ batch: {batch} }} }}\n"
    )


async def _rate(service: RateLimiterService, policy: str, keys: list[str], n: int, conc: int) -> float:
    rt = service.policy(policy)
    nkeys = len(keys)
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            r = rt.check_reply(keys[i % nkeys], 1)
            if not rt.inline:
                r = await r
            assert r[0] in (1, True), r

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return n / (time.perf_counter() - t0)


def _commands(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_eval"))


async def main_async(args: argparse.Namespace) -> None:
    import redis

    prefix = f"tkbench-{uuid.uuid4().hex[:8]}"
    service = RateLimiterService(
        load_config(_config(16)), store=redis_store(args.redis, prefix), close_store=True
    )
    keys = [f"user-{i}" for i in range(args.keys)]
    await _rate(service, "plain", keys, 500, args.conc)  # warm-up: connections, scripts loaded
    await _rate(service, "fed", keys, 500, args.conc)
    plain: list[float] = []
    fed: list[float] = []
    for r in range(args.rounds):
        plain.append(await _rate(service, "plain", keys, args.n, args.conc))
        fed.append(await _rate(service, "fed", keys, args.n, args.conc))
        print(
            f"round {r + 1}/{args.rounds}: plain {plain[-1]:,.0f} Check/s, federated {fed[-1]:,.0f} Check/s"
        )
    ratios = [f / p for f, p in zip(fed, plain)]
    print()
    print(
        f"Check/s on Redis, {args.conc} in flight, {args.keys} keys, median of {args.rounds} rounds (min..max)"
    )
    print("| path | Check/s | spread | ratio to plain (spread) |")
    print("|---|--:|--:|--:|")
    print(f"| plain fixedWindow (ceiling: one EVALSHA per Check) | {statistics.median(plain):,.0f} | "
          f"{min(plain):,.0f}..{max(plain):,.0f} | 1.00 |")  # fmt: skip
    print(f"| federated fixedWindow, batch 16 | {statistics.median(fed):,.0f} | {min(fed):,.0f}..{max(fed):,.0f} | "
          f"{statistics.median(ratios):.2f} ({min(ratios):.2f}..{max(ratios):.2f}) |")  # fmt: skip
    await service.aclose()

    client = redis.Redis.from_url(args.redis)
    print()
    print(
        "Coordinator round trips per 100 decisions (fed_lease calls; Redis EVAL/EVALSHA calls counted by Redis)"
    )
    print("| policy | coordinator round trips / 100 | Redis script calls / 100 |")
    print("|---|--:|--:|")
    decisions = 10_000
    one_key = ["hot"]
    for batch in (1, 16, 64):
        svc = RateLimiterService(
            load_config(_config(batch)), store=redis_store(args.redis, f"{prefix}-{batch}"), close_store=True
        )
        before = _commands(client)
        await _rate(svc, "fed", one_key, decisions, 1)
        calls = _commands(client) - before
        trips = svc.policy("fed").limiter.round_trips
        print(f"| federated, batch {batch} | {100 * trips / decisions:.2f} | {100 * calls / decisions:.2f} |")
        await svc.aclose()
    svc = RateLimiterService(
        load_config(_config(1)), store=redis_store(args.redis, f"{prefix}-p"), close_store=True
    )
    before = _commands(client)
    await _rate(svc, "plain", one_key, decisions, 1)
    print(f"| plain (ceiling) | n/a | {100 * (_commands(client) - before) / decisions:.2f} |")
    await svc.aclose()
    for key in client.scan_iter(f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--conc", type=int, default=32)
    ap.add_argument("--keys", type=int, default=100)
    asyncio.run(main_async(ap.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
