#!/usr/bin/env python3
"""Benchmark the in-flight axis beside plain Check, measured in the same run (ratios are what count).

In process (interleaved rounds, one process): ``Limiter(Gcra).check`` on the memory store (one Lua
decision: the baseline), an ``Admitter`` admit + release pair on a pinned guard (two Lua calls), and the
unified pair (guard + the same gcra limiter: three Lua calls), and the pair under the joint-LP filter
(static duals, and a frozen adaptive learner: one more Lua call each).

Through gRPC (one ``throttlekit-server`` subprocess on the memory store, plus the bare grpc.aio echo of
``bench_grpc.py`` as the ceiling): Python client processes (asyncio, concurrent streams) send Check, an
Admit + Release pair on a concurrency policy, the pair on a unified (gcra x concurrency) policy and on a
concurrency policy with a ``jointLp`` block (static duals; every admit passes its bid), interleaved by
round. Each row: median rate over rounds, ratio to the plain Check of the same round, and
the spread (min..max) of that ratio.

Usage: ``python scripts/bench_admit.py [--rounds 5] [--n 20000] [--grpc-n 6000]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_grpc

import throttlekit as tk
from throttlekit.admission import Admitter
from throttlekit.concurrency import concurrency_params

BIG = 10**12
CONFIG = f"""limiters:
  check: {{ strategy: gcra, limit: {BIG}, period: 1s }}
  conc: {{ concurrency: {{ minLimit: 100000, maxLimit: 100000 }} }}
  unified:
    strategy: gcra
    limit: {BIG}
    period: 1s
    concurrency: {{ minLimit: 100000, maxLimit: 100000 }}
  lp:
    concurrency: {{ minLimit: 100000, maxLimit: 100000 }}
    jointLp: {{ duals: {{ rate: 0.5, cost: 0.25 }} }}
"""
CLIENTS, STREAMS = 2, 16


def _rate(fn: Callable[[int], None], n: int) -> float:
    t0 = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t0)


def in_process(n: int, rounds: int) -> list[tuple[str, float, float, tuple[float, float]]]:
    limiter = tk.Limiter(tk.Gcra(BIG, "1s"), store=tk.MemoryStore())
    pinned = concurrency_params(min_limit=100_000, max_limit=100_000)
    conc = Admitter(pinned)
    unified = Admitter(pinned, rate=tk.Limiter(tk.Gcra(BIG, "1s"), store=tk.MemoryStore()))
    # joint-LP (docs/concurrency.md "Joint-LP"): static duals (one more Lua call, no state) and an
    # adaptive learner already frozen (one more Lua call reading its hash); every admit passes the bid
    lp_static = Admitter(pinned, policy="joint-lp", joint_lp={"duals": {"rate": 0.5, "cost": 0.25}})
    workload = {"types": [{"cost": 1, "value": 1, "weight": 1}], "rateBudget": 1, "costBudget": 1}
    lp_learned = Admitter(pinned, policy="joint-lp", joint_lp={**workload, "adaptive": {"sampleWindow": 1}})
    lp_learned.admit("hot").release()  # the learner freezes at its first admit

    def check(k: int) -> None:
        for _ in range(k):
            limiter.check("hot")

    def pair(adm: Admitter) -> Callable[[int], None]:
        def run(k: int) -> None:
            for _ in range(k):
                adm.admit("hot").release()

        return run

    contenders = {"Limiter.check (gcra)": check, "admit+release (concurrency)": pair(conc),
                  "admit+release (unified gcra x concurrency)": pair(unified),
                  "admit+release (concurrency, joint-lp duals)": pair(lp_static),
                  "admit+release (concurrency, joint-lp adaptive, frozen)": pair(lp_learned)}  # fmt: skip
    return _rounds(contenders, n, rounds, "Limiter.check (gcra)")


def _rounds(
    contenders: dict[str, Callable[[int], float | None]], n: int, rounds: int, base: str
) -> list[tuple[str, float, float, tuple[float, float]]]:
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        _measure(fn, max(1, n // 10))  # warm up
    for _ in range(rounds):
        for name, fn in contenders.items():
            rates[name].append(_measure(fn, n))
    rows = []
    for name, rs in rates.items():
        ratios = [r / b for r, b in zip(rs, rates[base])]
        rows.append((name, statistics.median(rs), statistics.median(ratios), (min(ratios), max(ratios))))
    return rows


def _measure(fn: Callable[[int], float | None], n: int) -> float:
    t0 = time.perf_counter()
    got = fn(n)
    return got if got is not None else n / (time.perf_counter() - t0)


def _client(port: int, op: str, n: int, streams: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from throttlekit._proto import throttlekit_pb2 as pb
    from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc

    async def run() -> int:
        import grpc

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.RateLimiterStub(ch)
            left, done = n, 0
            check = pb.CheckRequest(policy="check", key="hot", cost=1)

            async def worker() -> None:
                nonlocal left, done
                while left > 0:
                    left -= 1
                    if op == "check":
                        await stub.Check(check, timeout=10)
                    else:
                        a = await stub.Admit(pb.AdmitRequest(policy=op, key="hot"), timeout=10)
                        assert a.lease_id
                        await stub.Release(pb.ReleaseRequest(lease_id=a.lease_id), timeout=10)
                    done += 1

            await asyncio.gather(*(worker() for _ in range(streams)))
            return done

    out.put(asyncio.run(run()))


def _load(port: int, op: str, n: int) -> float:
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [
        multiprocessing.Process(target=_client, args=(port, op, n // CLIENTS, STREAMS, queue))
        for _ in range(CLIENTS)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    done = sum(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return done / (time.perf_counter() - t0)


def through_grpc(n: int, rounds: int) -> list[tuple[str, float, float, tuple[float, float]]]:
    with tempfile.TemporaryDirectory() as d:
        config = Path(d) / "bench.yaml"
        config.write_text(CONFIG)
        echo, echo_port = bench_grpc.start_echo()
        server, port = bench_grpc.start_server(config, "memory", "")
        try:
            contenders: dict[str, Callable[[int], float | None]] = {
                "echo Check (ceiling)": lambda k: _load(echo_port, "check", k),
                "Check (gcra)": lambda k: _load(port, "check", k),
                "Admit+Release (concurrency), pairs": lambda k: _load(port, "conc", k // 2),
                "Admit+Release (unified), pairs": lambda k: _load(port, "unified", k // 2),
                "Admit+Release (concurrency, joint-lp), pairs": lambda k: _load(port, "lp", k // 2),
            }
            return _rounds(contenders, n, rounds, "Check (gcra)")
        finally:
            for p in (echo, server):
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=20_000, help="in-process operations per round and contender")
    ap.add_argument("--grpc-n", type=int, default=6_000, help="gRPC calls per round and contender")
    args = ap.parse_args()
    for title, rows in (
        ("in process (memory store)", in_process(args.n, args.rounds)),
        (
            f"through gRPC ({CLIENTS} client processes x {STREAMS} streams, memory store)",
            through_grpc(args.grpc_n, args.rounds),
        ),
    ):
        print(f"\n{title}")
        print(f"| {'path':<45} | {'ops/s':>10} | {'ratio to Check':>14} | {'spread':>13} |")
        print(f"|{'-' * 47}|{'-' * 12}:|{'-' * 15}:|{'-' * 14}:|")
        for name, rate, ratio, (lo, hi) in rows:
            print(f"| {name:<45} | {rate:>10,.0f} | {ratio:>14.2f} | {lo:>5.2f}..{hi:<5.2f} |")


if __name__ == "__main__":
    main()
