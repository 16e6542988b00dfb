#!/usr/bin/env python3
"""Capture on vs off (and What-If shadows): Check/s of the door's inline hot path in one run.

Services over the memory store, identical but for the observers on their decision tap:

- ``capture off (ceiling)``: nothing registered (the untapped Check);
- ``no-op observer``: an inline observer that does nothing (what the decision tap costs an observer:
  building the event and the call);
- ``no-op sink``: a sink that does nothing (what the tap costs a sink, as capture and the telemetry hub
  are: the decision's fields queued as a tuple, handed over every 256 decisions; the capture rows add
  capture's own work to it);
- ``capture counts-only``: the recorder with no tenant rule (per-policy tallies only);
- ``capture tenant-scoped, hmac``: tenant from the key prefix, tenant and key HMAC-redacted, the event
  appended to its (scope, policy) ring (rings drained between rounds, outside the timing, as the 5 s
  flush does);
- ``replay shadow``: a What-If shadow (an extra Lua call per decision on its own store).

Rounds interleave the services so background load hits all alike; each times ``N`` Checks over a
rotating set of keys. The table: median Check/s, the median ratio to the ceiling of the same round
and its spread, and the added ns per Check.

Usage: ``python scripts/bench_capture.py [--rounds 7] [--n 50000]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import throttlekit as tk
from throttlekit.config import load_config
from throttlekit.forensics import attach_capture, attach_replay
from throttlekit.server import RateLimiterService

POLICY = {"strategy": "fixedWindow", "limit": 3, "period": "1h"}
#: The capture blocks of the two capture rows (``scripts/bench_instructions.py --capture`` counts the same).
HMAC: dict[str, Any] = {"redaction": {"mode": "hmac", "secret": "bench-secret"}}
TENANT: dict[str, Any] = {**HMAC, "tenant": {"from": "key-prefix"}, "retention": {"ringSize": 10_000_000}}


def _service(capture: dict[str, Any] | None, replay: bool = False) -> tuple[RateLimiterService, Any]:
    doc: dict[str, Any] = {"limiters": {"api": POLICY}}
    if capture is not None:
        doc["capture"] = {"enabled": True, **capture}
    if replay:
        doc["replay"] = {"enabled": True, "maxSteps": 10_000_000}
    cfg = load_config(json.dumps(doc))
    svc = RateLimiterService(cfg, store=tk.MemoryStore())
    observer = (
        attach_capture(svc, cfg) if capture is not None else attach_replay(svc, cfg) if replay else None
    )
    return svc, observer


def _noop() -> tuple[RateLimiterService, Any]:
    svc, _ = _service(None)
    svc.tap.register(lambda event: None)
    return svc, None


class _NullSink:
    def absorb(self, events: object) -> None:
        pass


def _noop_sink() -> tuple[RateLimiterService, Any]:
    svc, _ = _service(None)
    svc.tap.register_sink(_NullSink())
    return svc, None


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
    args = ap.parse_args()
    rows: dict[str, tuple[RateLimiterService, Any]] = {
        "capture off (ceiling)": _service(None),
        "no-op observer (the tap's own cost for an inline observer)": _noop(),
        "no-op sink (the tap's own cost for a sink, as capture is)": _noop_sink(),
        "capture counts-only": _service(HMAC),
        "capture tenant-scoped, hmac": _service(TENANT),
        "replay shadow": _service(None, replay=True),
    }
    keys = [f"team-{i % 50}:user-{i}" for i in range(5000)]
    for svc, _ in rows.values():
        _round(svc, keys, 10_000)
    ns: dict[str, list[float]] = {name: [] for name in rows}
    for r in range(args.rounds):
        for name, (svc, observer) in rows.items():
            ns[name].append(_round(svc, keys, args.n))
            if observer is not None and hasattr(observer, "recorder"):
                observer.recorder.drain()
        print(
            f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.0f} ns" for k, v in ns.items()),
            file=sys.stderr,
        )
    base = ns["capture off (ceiling)"]
    print("| path | Check/s (median) | ratio to capture off (median) | spread | added ns/Check (median) |")
    print("|---|--:|--:|--:|--:|")
    for name, vals in ns.items():
        ratios = [b / v for b, v in zip(base, vals)]
        added = [v - b for v, b in zip(vals, base)]
        print(
            f"| {name} | {1e9 / statistics.median(vals):,.0f} | {statistics.median(ratios):.2f}x | "
            f"{min(ratios):.2f}-{max(ratios):.2f}x | {statistics.median(added):,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
