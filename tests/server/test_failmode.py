"""Store outage: with our own redis-server stopped, decisions are synthesized per --fail open|closed
(never an RPC error), the outage is logged once per burst, and the server recovers when Redis returns."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest

import throttlekit as tk
from tests._support.redis_server import OwnRedis, free_port
from tests._support.server import Served, Starter, pb
from throttlekit.server import redis_store

pytestmark = pytest.mark.redis
POLICIES = {"api": {"strategy": "fixedWindow", "limit": 5, "period": "1m"}}
NOW = 1_700_000_000_000


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


def _pair(start_server: Starter, own_redis: OwnRedis, clock: tk.ManualClock) -> tuple[Served, Served]:
    open_ = start_server(POLICIES, store=redis_store(own_redis.url, "open"), clock=clock, fail="open")
    closed = start_server(POLICIES, store=redis_store(own_redis.url, "closed"), clock=clock, fail="closed")
    return open_, closed


def _decision(msg: object) -> tk.Decision:
    return tk.Decision(msg.allowed, msg.limit, msg.remaining, msg.reset_at, msg.retry_after_ms)  # type: ignore[attr-defined]


def test_fail_open_and_closed_synthesize_decisions_then_recover(
    start_server: Starter, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="throttlekit.server")
    clock = tk.ManualClock(NOW)
    open_, closed = _pair(start_server, own_redis, clock)
    assert [open_.check("api", "k").remaining for _ in range(2)] == [4, 3]
    assert closed.check("api", "k").remaining == 4

    own_redis.stop()
    for _ in range(5):
        assert _decision(open_.check("api", "k")) == tk.Decision(True, 5, 5, 0, 0)
        assert _decision(closed.check("api", "k")) == tk.Decision(False, 5, 0, 0, 0)
    many = open_.stub.CheckMany(pb.CheckManyRequest(policy="api", keys=["a", "b", "c"])).decisions
    assert [_decision(d) for d in many] == [tk.Decision(True, 5, 5, 0, 0)] * 3
    peek = closed.stub.Peek(pb.PeekRequest(policy="api", key="k")).decision
    assert _decision(peek) == tk.Decision(False, 5, 0, 0, 0)
    assert open_.code_of("Forecast", pb.ForecastRequest(policy="api", key="k")) == grpc.StatusCode.UNAVAILABLE
    outages = [r for r in caplog.records if "store outage" in r.getMessage()]
    assert len(outages) == 2  # one per server, not one per request
    assert {"failing open" in r.getMessage() for r in outages} == {True, False}

    own_redis.start()  # same port, empty (state and script cache are gone)
    assert open_.check("api", "k").remaining == 4
    assert [closed.check("api", "k").remaining for _ in range(2)] == [4, 3]
    recovered = [r for r in caplog.records if "store recovered" in r.getMessage()]
    assert len(recovered) == 2
    counts = sorted(r.getMessage().split("; ")[1].split(" decisions")[0] for r in recovered)
    assert counts == ["6", "8"]  # closed: 5 checks + 1 peek; open: 5 checks + 3 CheckMany keys


def test_a_store_that_is_down_at_startup_is_a_fail_decision_not_a_crash(start_server: Starter) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    served = start_server(POLICIES, store=redis_store(url, "x"), fail="closed")
    assert not served.check("api", "k").allowed
    assert served.service.outage.down
