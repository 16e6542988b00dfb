"""``fairEscrow:`` and ``federatedFairEscrow:`` served by Check (the key is the tenant): the split over gRPC,
the ops they do not offer, and the store each needs."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

import throttlekit as tk
from tests._support.server import Starter, async_redis_store, pb
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService

FAIR = {"fairEscrow": {"limit": 40, "windowMs": 600_000, "weights": {"gold": 3}}}
FED = {"federatedFairEscrow": {"limit": 40, "windowMs": 600_000, "weights": {"gold": 3}}}


def test_fair_escrow_splits_by_weight_over_grpc(start_server: Starter) -> None:
    s = start_server({"gw": FAIR})
    seen: list[Any] = []
    s.service.tap.register(seen.append)
    got = {"gold": 0, "tin": 0}
    for _ in range(40):
        for tenant in got:
            got[tenant] += s.check("gw", tenant).allowed
    assert got == {"gold": 30, "tin": 10}
    assert len(seen) == 80 and sum(e.allowed for e in seen) == 40 and {e.policy for e in seen} == {"gw"}
    d = s.check("gw", "tin")
    assert not d.allowed and d.limit == 10 and d.retry_after_ms > 0
    for method, request in (
        ("CheckMany", pb.CheckManyRequest(policy="gw", keys=["a"])),
        ("Peek", pb.PeekRequest(policy="gw", key="a")),
        ("Forecast", pb.ForecastRequest(policy="gw", key="a")),
        ("Debit", pb.DebitRequest(policy="gw", key="a")),
    ):
        assert s.code_of(method, request) == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.redis
def test_federated_fair_escrow_regions_share_one_limit(start_server: Starter) -> None:
    from tests._support.stores import unique_prefix

    prefix = unique_prefix("tkffe")
    eu = start_server({"gw": FED}, store=async_redis_store(prefix), region="eu")
    us = start_server({"gw": FED}, store=async_redis_store(prefix), region="us")
    got = {"gold": 0, "tin": 0}
    for _ in range(40):
        got["gold"] += eu.check("gw", "gold").allowed
        got["tin"] += us.check("gw", "tin").allowed
    assert got == {"gold": 30, "tin": 10}  # 40 in total across the two regions, split 3:1


def test_federated_fair_escrow_needs_redis() -> None:
    cfg = load_config('{"limiters": {"gw": {"federatedFairEscrow": {"limit": 5, "windowMs": 1000}}}}')
    with pytest.raises(tk.ConfigError, match="needs a shared region-fair-pool store"):
        RateLimiterService(cfg)
