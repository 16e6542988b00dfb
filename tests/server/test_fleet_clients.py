"""Fleet door clients against our server on a real Redis: our :class:`FleetBackend` /
:class:`AsyncFleetBackend` (reserve, and leased limiters spending with the LeaseSpender), and the PyPI
client throttlekit-py's own ``FleetBackend.reserve`` (a grant, a partial grant when the window is nearly
spent, UNAUTHENTICATED from a non-loopback address without the secret, accepted with it)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

import throttlekit as tk
from tests._support.env import IN_CI
from tests._support.server import Starter, async_redis_store
from tests._support.tkpy import run_tkpy
from throttlekit.client import (
    AsyncFleetBackend,
    FleetBackend,
    Lease,
    OperationNotSupportedError,
    PolicyNotFoundError,
)

pytestmark = pytest.mark.redis

FED = {"strategy": "fixedWindow", "limit": 50, "windowMs": 600_000, "federated": {"batch": 8}}
PLAIN = {"strategy": "gcra", "limit": 5, "period": "1s"}


def non_loopback_address() -> str:
    for probe in ("192.0.2.1", "10.255.255.255"):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                addr = str(s.getsockname()[0])
        except OSError:
            continue
        if not addr.startswith("127."):
            return addr
    if IN_CI:
        pytest.fail("CI=true but this machine has no non-loopback IPv4 address")
    pytest.skip("no non-loopback IPv4 address on this machine")


def test_reserve_and_leased_limiter(start_server: Starter) -> None:
    s = start_server({"fed": FED, "plain": PLAIN}, store=async_redis_store())
    with FleetBackend(s.target, timeout=10) as fleet:
        lease = fleet.reserve("fed", wants=5, domain="a")
        assert isinstance(lease, Lease) and lease.granted and lease.capacity == 5 and lease.limit == 50
        assert lease.safe_capacity == 5 and lease.retry_after_ms == 0
        assert lease.expiry_ms % 600_000 == 0
        limiter = fleet.leased("fed", domain="a", batch=10)
        decisions = [limiter.check() for _ in range(50)]
        assert sum(d.allowed for d in decisions) == 45  # 5 went to the reserve above
        assert limiter.reserves == 10  # 4 full leases, 1 partial (5), then one refusal per denied check
        denial = decisions[-1]
        assert not denial.allowed and denial.remaining == 0 and denial.limit == 50
        assert denial.reset_at == lease.expiry_ms and 0 < denial.retry_after_ms <= 600_000
        assert (
            decisions[0].allowed and decisions[0].remaining == 9 and decisions[0].reset_at == lease.expiry_ms
        )
        # a cost above batch asks for the cost
        big = fleet.leased("fed", domain="b", batch=2)
        d = big.check(7)
        assert d.allowed and d.remaining == 0 and big.reserves == 1
        limiter.close()
        big.close()
        with pytest.raises(PolicyNotFoundError):
            fleet.reserve("plain")
        with pytest.raises(OperationNotSupportedError):
            fleet.reserve("fed", axis="concurrency")
        with pytest.raises(tk.ConfigError):
            fleet.reserve("fed", axis="bogus")
        with pytest.raises(tk.ConfigError):
            fleet.leased("fed", batch=0)


def test_window_coupled_credits_expire_with_the_window(start_server: Starter) -> None:
    s = start_server({"fed": FED}, store=async_redis_store())
    with FleetBackend(s.target, timeout=10) as fleet:
        limiter = fleet.leased("fed", batch=10)
        first = limiter.check()
        assert first.allowed and limiter.reserves == 1
        # at the window's end the 9 credits left are discarded: the next check refreshes. This client's
        # clock is ahead of the server's (still in the window): the fresh grant is spent, not discarded
        # and re-leased in a loop (which would drain the window's budget)
        d = limiter.check(now=first.reset_at)
        assert limiter.reserves == 2 and d.allowed and d.remaining == 9
        assert limiter.check(now=first.reset_at).allowed and limiter.reserves == 3
        limiter.close()


def test_async_backend(start_server: Starter) -> None:
    s = start_server({"fed": FED}, store=async_redis_store())

    async def run() -> None:
        async with AsyncFleetBackend(s.target, timeout=10) as fleet:
            lease = await fleet.reserve("fed", wants=45, domain="x")
            assert lease.capacity == 45
            limiter = fleet.leased("fed", domain="x", batch=4)
            got = [await limiter.check() for _ in range(8)]
            assert [d.allowed for d in got] == [True] * 5 + [False] * 3
            assert limiter.reserves == 5  # 4, then 1 (partial), then three refusals
            assert got[-1].retry_after_ms > 0
            with pytest.raises(PolicyNotFoundError):
                await fleet.reserve("nope")
            limiter.close()

    asyncio.run(run())


TKPY = r"""
import json, sys
from throttlekit import FleetBackend
from throttlekit.errors import ThrottleKitError
target, secret = sys.argv[1], sys.argv[2] or None
out = []
with FleetBackend(target, secret=secret) as fleet:
    for wants in (30, 30, 5):
        try:
            l = fleet.reserve("fed", domain="tkpy", wants=wants)
            out.append([l.capacity, l.expiry_ms, l.refresh_interval_ms, l.safe_capacity, l.retry_after_ms, l.limit])
        except ThrottleKitError as exc:
            out.append(["error", type(exc).__name__, str(exc)])
print(json.dumps(out))
"""


@pytest.mark.slow
def test_throttlekit_py_fleet_backend(start_server: Starter) -> None:
    s = start_server({"fed": FED}, store=async_redis_store(), host="0.0.0.0")
    grant, partial, refused = json.loads(run_tkpy(TKPY, s.target, ""))
    assert grant[0] == 30 and grant[3] == 30 and grant[4] == 0 and grant[5] == 50
    assert grant[1] % 600_000 == 0 and 0 < grant[2] <= 600_000
    assert partial[0] == 20 and partial[1] == grant[1]  # what the window had left
    assert refused[0] == 0 and refused[4] > 0 and refused[1] == grant[1]
    remote = f"{non_loopback_address()}:{s.handle.port}"
    (denied, *_) = json.loads(run_tkpy(TKPY, remote, ""))
    assert denied[0] == "error" and "UNAUTHENTICATED" in denied[2]
    guarded = start_server({"fed": FED}, store=async_redis_store(), host="0.0.0.0", fleet_secret="k3y")
    remote = f"{non_loopback_address()}:{guarded.handle.port}"
    first, *_ = json.loads(run_tkpy(TKPY, remote, "k3y"))
    assert first[0] == 30
    (denied, *_) = json.loads(run_tkpy(TKPY, remote, "wrong"))
    assert denied[0] == "error" and "UNAUTHENTICATED" in denied[2]
