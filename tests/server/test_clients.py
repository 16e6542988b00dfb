"""The package's clients: ServiceBackend / AsyncServiceBackend against a real server (typed errors,
client-side fail mode) and RedisBackend / AsyncRedisBackend sharing one limit with the server."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest

import throttlekit as tk
from tests._support.env import IN_CI, REAL_REDIS, REDIS_URL
from tests._support.server import Starter
from throttlekit.server import redis_store

POLICIES = {
    "api": {"strategy": "gcra", "limit": 10, "period": "1s", "burst": 2},
    "win": {"strategy": "fixedWindow", "limit": 3, "period": "1m"},
}
NOW = 1_700_000_000_000


def _dead_target() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens once the socket closes


def test_service_backend_round_trip_and_typed_errors(start_server: Starter) -> None:
    clock = tk.ManualClock(NOW)
    served = start_server(POLICIES, clock=clock, store=tk.MemoryStore(clock=clock))
    reference = tk.Limiter(tk.FixedWindow(3, "1m"), clock=clock)
    with tk.ServiceBackend(served.target, timeout=5) as c:
        assert c.check("win", "k") == reference.check("k")
        assert c.check_many("win", ["k", "j"], cost=1) == reference.check_many(["k", "j"])
        assert c.peek("win", "k") == reference.peek("k")
        assert c.forecast("win", "k") == reference.forecast("k")
        with pytest.raises(tk.PolicyNotFoundError, match='unknown policy "nope"') as nf:
            c.check("nope", "k")
        assert isinstance(nf.value, LookupError)
        with pytest.raises(tk.OperationNotSupportedError, match='policy "api" does not support debit'):
            c.debit("api", "k", 5)
        with pytest.raises(tk.OperationNotSupportedError, match="does not support admit"):
            c.admit("api", "k")
        c.release("1")  # policy-independent and idempotent: an unknown lease id is a no-op
        with pytest.raises(tk.InvalidRequestError, match="must not be negative"):
            c.check("api", "k", cost=-3)
        assert isinstance(tk.OperationNotSupportedError("x"), tk.NotSupportedError)


def test_async_service_backend(start_server: Starter) -> None:
    clock = tk.ManualClock(NOW)
    served = start_server(POLICIES, clock=clock, store=tk.MemoryStore(clock=clock))

    async def run() -> list[int]:
        async with tk.AsyncServiceBackend(served.target, timeout=5) as c:
            got = [(await c.check("win", "a")).remaining for _ in range(4)]
            assert [d.remaining for d in await c.check_many("win", ["b", "b"])] == [2, 1]
            assert (await c.peek("win", "a")).allowed is False
            assert (await c.forecast("win", "b")).spendable_now == 1
            with pytest.raises(tk.PolicyNotFoundError):
                await c.check("nope", "k")
            with pytest.raises(tk.OperationNotSupportedError):
                await c.debit("win", "k")
            return got

    assert asyncio.run(run()) == [2, 1, 0, 0]


def test_client_side_fail_mode_for_an_unreachable_service() -> None:
    target = _dead_target()
    with tk.ServiceBackend(target, timeout=2) as c, pytest.raises(tk.ServiceUnavailableError):
        c.check("api", "k")
    with tk.ServiceBackend(target, timeout=2, fail="open") as c:
        assert c.check("api", "k") == tk.Decision(True, 0, 0, 0, 0)
        assert c.check_many("api", ["a", "b"]) == [tk.Decision(True, 0, 0, 0, 0)] * 2
        assert c.admit("api", "k").allowed and c.admit("api", "k").lease_id == ""
        with pytest.raises(tk.ServiceUnavailableError):
            c.forecast("api", "k")  # no honest forecast can be made up
    with tk.ServiceBackend(target, timeout=2, fail="closed") as c:
        assert c.check("api", "k") == tk.Decision(False, 0, 0, 0, 0)

    async def run() -> tk.Decision:
        async with tk.AsyncServiceBackend(target, timeout=2, fail="closed") as c:
            return await c.peek("api", "k")

    assert asyncio.run(run()) == tk.Decision(False, 0, 0, 0, 0)
    with pytest.raises(tk.ConfigError):
        tk.ServiceBackend(target, fail="sometimes")  # type: ignore[arg-type]


@pytest.mark.redis
def test_redis_backends_share_one_limit_with_the_server(start_server: Starter) -> None:
    if REAL_REDIS is None:
        if IN_CI:
            pytest.fail(f"CI=true but Redis is unreachable at {REDIS_URL}")
        pytest.skip("needs a real Redis shared by the server and the direct backends")
    prefix = f"shared-{uuid.uuid4().hex[:8]}"
    policies = {"api": {"strategy": "fixedWindow", "limit": 6, "period": "1h", "prefix": prefix}}
    served = start_server(policies, store=redis_store(REDIS_URL))
    strategy = tk.FixedWindow(6, "1h")
    with tk.RedisBackend(url=REDIS_URL, strategy=strategy, prefix=prefix) as direct:
        assert served.check("api", "k").remaining == 5
        assert direct.check("k").remaining == 4
        assert served.check("api", "k").remaining == 3
        assert direct.peek("k").remaining == 3
        assert direct.check_many(["k", "k"])[1].remaining == 1

        async def run() -> int:
            async with tk.AsyncRedisBackend(url=REDIS_URL, strategy=strategy, prefix=prefix) as a:
                return (await a.check("k")).remaining

        assert asyncio.run(run()) == 0
        assert not served.check("api", "k").allowed
        direct.reset("k")
        assert served.check("api", "k").remaining == 5
    with pytest.raises(TypeError, match="needs a strategy"):
        tk.RedisBackend(url=REDIS_URL)
