"""Store outage: with our own redis-server stopped, decisions are synthesized per --fail open|closed
(never an RPC error), the outage is logged once per burst, and the server recovers when Redis returns."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import grpc
import pytest
import redis

import throttlekit as tk
from tests._support.env import IN_CI
from tests._support.server import Served, Starter, pb
from throttlekit.server import redis_store

pytestmark = pytest.mark.redis
POLICIES = {"api": {"strategy": "fixedWindow", "limit": 5, "period": "1m"}}
NOW = 1_700_000_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server subprocess on a fixed port, stoppable and restartable."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if IN_CI:
                pytest.fail("CI=true but redis-server is not installed")
            pytest.skip("redis-server binary not found")
        self.binary = binary
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:  # wait for the port, bounded: this is process start-up, not the behaviour under test
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


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
    url = f"redis://127.0.0.1:{_free_port()}/0"
    served = start_server(POLICIES, store=redis_store(url, "x"), fail="closed")
    assert not served.check("api", "k").allowed
    assert served.service.outage.down
