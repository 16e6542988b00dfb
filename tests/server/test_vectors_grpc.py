"""Every bundled rate-limit vector suite replayed through the gRPC door against a manual-clock server:
the decisions that cross the wire are the vectors' decisions, field for field."""

from __future__ import annotations

import re
from typing import Any

import pytest

import throttlekit as tk
from tests._support.server import Starter, make_store, pb
from throttlekit.vectors import bundled_vector_files, load_suites

SUITES = [
    (src, s)
    for src, s in load_suites(bundled_vector_files())
    if s.get("primitive", "rateLimit") == "rateLimit"
]


def _policy_name(suite: dict[str, Any]) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", suite["name"])


def _spec(suite: dict[str, Any]) -> dict[str, Any]:
    spec = suite["strategy"]
    return {"strategy": spec["kind"], **spec.get("options", {}), "prefix": _policy_name(suite)}


def _wire(got: Any, op: str) -> dict[str, Any]:
    if op == "forecast":
        return {
            "spendableNow": got.spendable_now,
            "nextReplenishAt": got.next_replenish_at,
            "fullAt": got.full_at,
        }
    return {
        "allowed": got.allowed,
        "limit": got.limit,
        "remaining": got.remaining,
        "resetAt": got.reset_at,
        "retryAfterMs": got.retry_after_ms,
    }


def test_there_are_rate_suites_to_replay() -> None:
    assert len(SUITES) >= 9
    assert {s["strategy"]["kind"] for _, s in SUITES} >= {
        "gcra",
        "tokenBucket",
        "fixedWindow",
        "slidingWindow",
        "slidingWindowLog",
    }


def test_vectors_through_the_grpc_door(start_server: Starter, store_kind: str) -> None:
    clock = tk.ManualClock(0)
    served = start_server(
        {_policy_name(s): _spec(s) for _, s in SUITES}, store=make_store(store_kind, clock), clock=clock
    )
    stub = served.stub
    mismatches: list[str] = []
    ops = 0
    for src, suite in SUITES:
        policy, key = _policy_name(suite), suite.get("key", "k")
        for i, op in enumerate(suite["ops"]):
            clock.set(op["now"])
            kind = op.get("op", "check")
            cost = op.get("cost", 1)
            if kind == "check":
                got = stub.Check(pb.CheckRequest(policy=policy, key=key, cost=cost)).decision
            elif kind == "peek":
                got = stub.Peek(pb.PeekRequest(policy=policy, key=key)).decision
            else:
                got = stub.Forecast(pb.ForecastRequest(policy=policy, key=key, cost=cost)).forecast
            wire = _wire(got, kind)
            ops += 1
            for field, want in op["expect"].items():
                if wire[field] != want:
                    mismatches.append(
                        f"{src}:{suite['name']} op #{i} {field}: expected {want!r}, got {wire[field]!r}"
                    )
    assert mismatches == []
    assert ops >= 100


@pytest.mark.parametrize("cost", [0, 1])
def test_cost_zero_on_the_wire_replays_like_cost_one(start_server: Starter, cost: int) -> None:
    _src, suite = SUITES[0]
    clock = tk.ManualClock(0)
    served = start_server({"v": _spec(suite)}, clock=clock, store=make_store("memory", clock))
    for op in suite["ops"]:
        if op.get("cost", 1) != 1:
            continue
        clock.set(op["now"])
        got = served.stub.Check(pb.CheckRequest(policy="v", key="k", cost=cost)).decision
        assert _wire(got, "check") == op["expect"]
        break
