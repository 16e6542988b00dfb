#!/usr/bin/env python3
"""Fair escrow on the store's bound fast path, beside a plain policy and the previous path, in one run.

Check/s through the service's Check path (``check_reply``, what the gRPC door calls, without the
transport), in process on the memory store, for three policies with a budget no run spends (every check
is the O(1) admission):

* ``plain``: a fixedWindow (the ceiling: one bound Lua call per Check, as a Limiter does);
* ``fair (bound)``: a ``fairEscrow:`` policy as shipped: ``FairEscrow`` calls the store's ``bind`` seam
  (the policy's constants bound once; a call passes tenant, weight, cost, budget; the reply read by name);
* ``fair (runner, before)``: the same policy with the previous ``FairEscrow.decide``: the engine's raw
  ``runner`` with every ARGV passed on each call and the clock read in Python.

Rounds alternate the three so drifting background load hits each alike; the table reports medians, the
spread over rounds (min..max) and each round's ratio to plain.

Usage: ``python scripts/bench_fair.py [--rounds 7] [--n 20000] [--tenants 100]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from throttlekit import _validate as v
from throttlekit.config import load_config
from throttlekit.fairness import _POOL, FairEscrow, FairReply, _reply, wfe_args
from throttlekit.server import RateLimiterService

BIG = 10**12  # a budget no run spends


class _RunnerFairEscrow(FairEscrow):
    """``FairEscrow.decide`` as it was before the bound fast path (the engine's runner, every ARGV per call)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runner = self.store.engine.runner("wfe_check")

    def decide(
        self, tenant: str, cost: float = 1, *, weight: float | None = None, budget: int = -1
    ) -> FairReply:
        v.cost(cost)
        if not isinstance(tenant, str) or not tenant:
            raise ValueError(tenant)
        w = self.weight_of(tenant) if weight is None else v.number("weight", weight)
        now = self.clock.now_ms()
        args = wfe_args(self.window_ms, self.limit, self.max_tenants, self.idle_ms, tenant, w, cost, budget)
        out = self._runner(now, _POOL, now, *args)
        return _reply(out[1:])


def _rate(service: RateLimiterService, policy: str, keys: list[str], n: int) -> float:
    rt = service.policy(policy)
    nkeys = len(keys)
    t0 = time.perf_counter()
    for i in range(n):
        r = rt.check_reply(keys[i % nkeys], 1)
        assert r[0] in (1, True), r
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=20_000, help="checks per policy per round")
    ap.add_argument("--tenants", type=int, default=100, help="keys (tenants) the checks rotate over")
    args = ap.parse_args()
    cfg = load_config(
        "limiters:\n"
        f"  plain: {{ strategy: fixedWindow, limit: {BIG}, period: 1h }}\n"
        f"  fair: {{ fairEscrow: {{ limit: {BIG}, windowMs: 3600000, weights: {{ t1: 3 }} }} }}\n"
        f"  before: {{ fairEscrow: {{ limit: {BIG}, windowMs: 3600000, weights: {{ t1: 3 }} }} }}\n"
    )
    service = RateLimiterService(cfg)
    rt = service.policy("before")
    p = rt.policy
    rt.escrow.close()
    rt.escrow = _RunnerFairEscrow(p.limit, p.window_ms, weights=p.weights, max_tenants=p.max_keys)
    keys = [f"t{i}" for i in range(args.tenants)]
    rows: dict[str, list[float]] = {"plain": [], "fair": [], "before": []}
    for name in rows:  # warm-up: compile, JIT, first tenants
        _rate(service, name, keys, 2_000)
    for _ in range(args.rounds):
        for name in rows:
            rows[name].append(_rate(service, name, keys, args.n))
    labels = {
        "plain": "plain fixedWindow (ceiling: one bound Lua call per Check)",
        "fair": "fairEscrow, bound fast path (now)",
        "before": "fairEscrow, engine runner (before)",
    }
    print(
        f"Check/s in process (memory store, check_reply), {args.tenants} tenants, {args.n:,} checks per "
        f"round, median of {args.rounds} rounds (min..max)\n"
    )
    print("| path | Check/s | spread | ratio to plain (spread) |")
    print("|---|--:|--:|--:|")
    for name, label in labels.items():
        got = rows[name]
        ratios = [x / y for x, y in zip(got, rows["plain"])]
        print(
            f"| {label} | {statistics.median(got):,.0f} | {min(got):,.0f}..{max(got):,.0f} | "
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}..{max(ratios):.2f}) |"
        )
    after_before = [x / y for x, y in zip(rows["fair"], rows["before"])]
    print(
        f"\nbound / before, per round: median {statistics.median(after_before):.2f} "
        f"({min(after_before):.2f}..{max(after_before):.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
