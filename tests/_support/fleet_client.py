"""A fleet-test client process: ``python fleet_client.py PORTS POLICY KEY N CONCURRENCY [check|debit]``.

Sends N Check(cost 1) calls (or Debit(tokens 1) with ``debit``) on one key, round-robin over the
servers, C at a time, and prints one JSON
line: the wall-clock window [t0, t1] (epoch ms) around every call and, per ``reset_at`` (one per fixed
window; 0 = synthesized by the fail mode), ``[admitted, total]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import grpc

from throttlekit._proto import throttlekit_pb2 as pb
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc


async def main(ports: list[int], policy: str, key: str, n: int, conc: int, op: str = "check") -> None:
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in ports]
    stubs = [pb_grpc.RateLimiterStub(c) for c in channels]
    for c in channels:
        await asyncio.wait_for(c.channel_ready(), 10)
    windows: dict[int, list[int]] = {}
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            stub = stubs[i % len(stubs)]
            if op == "debit":
                r = await stub.Debit(pb.DebitRequest(policy=policy, key=key, tokens=1), timeout=120)
            else:
                r = await stub.Check(
                    pb.CheckRequest(policy=policy, key=key, cost=1), timeout=120
                )  # a hang guard (fleet.HANG_S)
            w = windows.setdefault(r.decision.reset_at, [0, 0])
            w[0] += int(r.decision.allowed)
            w[1] += 1

    t0 = time.time() * 1000
    await asyncio.gather(*(worker() for _ in range(conc)))
    t1 = time.time() * 1000
    for c in channels:
        await c.close()
    print(json.dumps({"t0": t0, "t1": t1, "windows": {str(k): v for k, v in windows.items()}}))


if __name__ == "__main__":
    ports = [int(p) for p in sys.argv[1].split(",")]
    asyncio.run(main(ports, sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), *sys.argv[6:7]))
