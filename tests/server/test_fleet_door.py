"""The Fleet door (``throttlekit.v1.Fleet/Reserve``) and federated policies served by Check, on a real
Redis: grants, partial grants, refusals, the status codes, health, and who may call it (loopback, or a
secret), with a non-loopback caller for real (this machine's own non-loopback address)."""

from __future__ import annotations

import socket
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import throttlekit as tk
from tests._support.env import IN_CI
from tests._support.server import Starter, async_redis_store, pb
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService

pytestmark = pytest.mark.redis

FED = {"strategy": "fixedWindow", "limit": 10, "windowMs": 60_000, "federated": {"batch": 4}}
PLAIN = {"strategy": "gcra", "limit": 5, "period": "1s"}


def reserve(target: str, secret: str | None = None, bearer: bool = False, **fields: Any) -> Any:
    metadata: list[tuple[str, str]] = []
    if secret is not None:
        metadata.append(("authorization", f"Bearer {secret}") if bearer else ("x-fleet-secret", secret))
    caller = pb.Caller(domain=fields.pop("domain", ""))
    with grpc.insecure_channel(target) as ch:
        reply = pb_grpc.FleetStub(ch).Reserve(
            pb.ReserveRequest(caller=caller, **fields), metadata=metadata or None, timeout=10
        )
    return reply.lease


def code(fn: Any, *args: Any, **kwargs: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    return info.value.code(), info.value.details()


def non_loopback_address() -> str:
    """An address of this machine that is not loopback (the source of a UDP route; nothing is sent)."""
    for probe in ("192.0.2.1", "10.255.255.255", "8.8.8.8"):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                addr = s.getsockname()[0]
        except OSError:
            continue
        if not addr.startswith("127."):
            return str(addr)
    if IN_CI:
        pytest.fail("CI=true but this machine has no non-loopback IPv4 address to call the Fleet door from")
    pytest.skip("no non-loopback IPv4 address on this machine")


def test_reserve_grants_partial_grants_and_refuses(start_server: Starter) -> None:
    s = start_server({"fed": FED, "plain": PLAIN}, store=async_redis_store())
    first = reserve(s.target, policy="fed", wants=4)
    assert first.capacity == 4 and first.safe_capacity == 4 and first.limit == 10
    assert first.retry_after_ms == 0
    assert first.expiry_ms % 60_000 == 0 and 0 < first.refresh_interval_ms <= 60_000
    assert reserve(s.target, policy="fed", wants=0).capacity == 1  # wants 0 means 1
    partial = reserve(s.target, policy="fed", wants=100)
    assert partial.capacity == 5 and partial.expiry_ms == first.expiry_ms  # what the window had left
    refused = reserve(s.target, policy="fed", wants=3)
    assert refused.capacity == 0 and refused.safe_capacity == 0
    assert 0 < refused.retry_after_ms <= 60_000 and refused.retry_after_ms == refused.refresh_interval_ms
    # a domain is its own budget; the empty domain leased the key named like the policy
    assert reserve(s.target, policy="fed", wants=3, domain="acme").capacity == 3
    # Check of that key draws from the same coordinator budget as Reserve of that domain
    allowed = sum(s.check("fed", "acme").allowed for _ in range(12))
    assert allowed == 7


def test_status_codes(start_server: Starter) -> None:
    s = start_server({"fed": FED, "plain": PLAIN}, store=async_redis_store())
    got = code(reserve, s.target, policy="plain")
    assert got[0] == grpc.StatusCode.NOT_FOUND and 'no leasable policy "plain"' in got[1]
    assert code(reserve, s.target, policy="nope")[0] == grpc.StatusCode.NOT_FOUND
    got = code(reserve, s.target, policy="fed", axis=pb.AXIS_CONCURRENCY)
    assert got[0] == grpc.StatusCode.UNIMPLEMENTED and "concurrency axis" in got[1]
    for axis in (pb.AXIS_RATE, pb.AXIS_TOKEN_BUDGET, pb.AXIS_UNSPECIFIED):
        assert reserve(s.target, policy="fed", axis=axis, domain=f"a{axis}").capacity == 1
    assert code(reserve, s.target, policy="fed", wants=2**60)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code(reserve, s.target, policy="fed", domain="x" * 5000)[0] == grpc.StatusCode.INVALID_ARGUMENT
    # federated policies are consume-only
    assert s.code_of("Peek", pb.PeekRequest(policy="fed", key="k")) == grpc.StatusCode.UNIMPLEMENTED
    assert s.code_of("Forecast", pb.ForecastRequest(policy="fed", key="k")) == grpc.StatusCode.UNIMPLEMENTED
    many = s.stub.CheckMany(pb.CheckManyRequest(policy="fed", keys=["m1", "m2", "m1"]), timeout=10)
    assert [d.allowed for d in many.decisions] == [True, True, True]


def test_health_lists_fleet_only_when_served(start_server: Starter) -> None:
    with_fed = start_server({"fed": FED}, store=async_redis_store())
    without = start_server({"plain": PLAIN}, store=async_redis_store())
    name = "throttlekit.v1.Fleet"
    with grpc.insecure_channel(with_fed.target) as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(without.target) as ch:
        got = code(
            health_pb2_grpc.HealthStub(ch).Check, health_pb2.HealthCheckRequest(service=name), timeout=10
        )
        assert got[0] == grpc.StatusCode.NOT_FOUND
    assert code(reserve, without.target, policy="plain")[0] == grpc.StatusCode.UNIMPLEMENTED


def test_secret_is_required_from_everyone_once_set(start_server: Starter) -> None:
    s = start_server({"fed": FED}, store=async_redis_store(), fleet_secret="s3cret")
    got = code(reserve, s.target, policy="fed")
    assert got[0] == grpc.StatusCode.UNAUTHENTICATED and "x-fleet-secret" in got[1]
    assert code(reserve, s.target, "wrong", policy="fed")[0] == grpc.StatusCode.UNAUTHENTICATED
    assert code(reserve, s.target, "s3cre", policy="fed")[0] == grpc.StatusCode.UNAUTHENTICATED
    assert reserve(s.target, "s3cret", policy="fed").capacity == 1
    assert reserve(s.target, "s3cret", bearer=True, policy="fed").capacity == 1
    # auth comes first: an unknown policy is not revealed to an unauthenticated caller
    assert code(reserve, s.target, policy="nope")[0] == grpc.StatusCode.UNAUTHENTICATED


def test_non_loopback_caller_needs_the_secret(start_server: Starter) -> None:
    """A real call from this machine's non-loopback address (the peer the server sees is not 127.x)."""
    addr = non_loopback_address()
    open_door = start_server({"fed": FED}, store=async_redis_store(), host="0.0.0.0")
    remote = f"{addr}:{open_door.handle.port}"
    got = code(reserve, remote, policy="fed")
    assert got[0] == grpc.StatusCode.UNAUTHENTICATED and "--fleet-secret" in got[1]
    assert reserve(open_door.target, policy="fed").capacity == 1  # the same server from loopback
    guarded = start_server({"fed": FED}, store=async_redis_store(), host="0.0.0.0", fleet_secret="k")
    remote = f"{addr}:{guarded.handle.port}"
    assert code(reserve, remote, policy="fed")[0] == grpc.StatusCode.UNAUTHENTICATED
    assert reserve(remote, "k", policy="fed").capacity == 1


def test_federated_needs_a_shared_coordinator_store() -> None:
    cfg = load_config('{"limiters": {"fed": ' + str(FED).replace("'", '"') + "}}")
    for store in (None, tk.MemoryStore()):
        with pytest.raises(tk.ConfigError, match="memory / dynamodb cannot federate"):
            RateLimiterService(cfg, store=store)


def test_region_is_validated() -> None:
    cfg = load_config('{"limiters": {"p": {"strategy": "gcra", "limit": 1, "period": "1s"}}}')
    for bad in ("", " ", "a\nb", "x" * 300):
        with pytest.raises(tk.ConfigError, match="region"):
            RateLimiterService(cfg, region=bad)


def test_federated_decisions_flow_through_the_decision_tap(start_server: Starter) -> None:
    s = start_server({"fed": FED}, store=async_redis_store())
    seen: list[Any] = []
    unregister = s.service.tap.register(seen.append)
    try:
        for _ in range(11):
            s.check("fed", "tapped")
    finally:
        unregister()
    assert [e.allowed for e in seen] == [True] * 10 + [False]
    assert {(e.policy, e.kind, e.op, e.key, e.limit) for e in seen} == {
        ("fed", "limiter", "check", "tapped", 10)
    }
    assert seen[-1].retry_after_ms > 0 and not seen[-1].synthesized


def test_coordinator_outage_is_fail_closed_whatever_fail_says(start_server: Starter) -> None:
    """A Redis of the test's own, stopped: the plain policy fails open (--fail open), the federated one
    spends its local credits and then denies (a budget shared across regions is never spent blind);
    Reserve is UNAVAILABLE (a grant is never synthesized)."""
    from tests._support.redis_server import OwnRedis
    from tests._support.stores import unique_prefix
    from throttlekit.server import redis_store

    own = OwnRedis()
    own.start()
    try:
        fed = {**FED, "federated": {"batch": 3}}
        s = start_server(
            {"fed": fed, "plain": PLAIN}, store=redis_store(own.url, unique_prefix()), fail="open"
        )
        assert s.check("fed", "k").allowed and s.check("plain", "k").allowed
        own.stop()
        assert s.check("fed", "k").allowed and s.check("fed", "k").allowed  # the 2 local credits left
        d = s.check("fed", "k")
        assert (d.allowed, d.limit, d.remaining, d.reset_at, d.retry_after_ms) == (False, 10, 0, 0, 0)
        assert s.check("plain", "k").allowed  # --fail open for the plain policy
        got = code(reserve, s.target, policy="fed")
        assert got[0] == grpc.StatusCode.UNAVAILABLE and "coordinator store is unavailable" in got[1]
    finally:
        own.stop()


def _fleet_state(target: str) -> tuple[grpc.StatusCode | None, Any]:
    """(Reserve's status code, None when it granted; health's status of the Fleet service, or NOT_FOUND)."""
    try:
        reserve(target, policy="fed")
        served: grpc.StatusCode | None = None
    except grpc.RpcError as exc:
        served = exc.code()
    with grpc.insecure_channel(target) as ch:
        try:
            health = (
                health_pb2_grpc.HealthStub(ch)
                .Check(health_pb2.HealthCheckRequest(service="throttlekit.v1.Fleet"), timeout=10)
                .status
            )
        except grpc.RpcError as exc:
            health = exc.code()
    return served, health


def test_sighup_opens_and_closes_the_fleet_door(tmp_path: Any, processes: list[Any]) -> None:
    """A real SIGHUP reload: adding the first federated policy starts serving ``throttlekit.v1.Fleet``
    (health lists it); removing the last one makes Reserve UNIMPLEMENTED again (the service is not served,
    spec 4.3) and health forgets it (NOT_FOUND), as on a server started without one."""
    import json
    import signal
    import time

    from tests._support.env import REDIS_URL
    from tests._support.server import launch, wait_listening
    from tests._support.stores import unique_prefix

    cfg = tmp_path / "p.json"
    cfg.write_text(json.dumps({"limiters": {"plain": PLAIN}}))
    proc = launch(
        "--config", str(cfg), "--port", "0", "--redis", REDIS_URL, "--redis-prefix", unique_prefix()
    )
    processes.append(proc)
    target = wait_listening(proc)
    closed = (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND)
    assert _fleet_state(target) == closed

    def reload_to(policies: dict[str, Any], want: tuple[Any, Any]) -> None:
        cfg.write_text(json.dumps({"limiters": policies}))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while (got := _fleet_state(target)) != want:
            assert time.monotonic() < deadline, f"after the reload: {got}, expected {want}"
            time.sleep(0.05)

    reload_to({"plain": PLAIN, "fed": FED}, (None, health_pb2.HealthCheckResponse.SERVING))
    assert reserve(target, policy="fed", wants=3).capacity == 3
    assert code(reserve, target, policy="plain")[0] == grpc.StatusCode.NOT_FOUND  # not leasable
    reload_to({"plain": PLAIN}, closed)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "added: fed" in err and "removed: fed" in err
