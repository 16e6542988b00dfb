"""Malformed and hostile requests never crash the server: every reply is a decision or one of the
documented status codes, and the server keeps answering afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._support.server import Served, pb
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService, serve

POLICIES = {
    "api": {"strategy": "gcra", "limit": 50, "period": "1s"},
    "q": {"strategy": "quota", "limit": 5, "resetCadence": "calendar-day"},
    "c": {"concurrency": {"minLimit": 2, "maxLimit": 8}},
    "u": {"strategy": "gcra", "limit": 5, "period": "1s", "concurrency": {"minLimit": 2, "maxLimit": 2}},
}
ALLOWED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED}
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
POLICY = st.one_of(st.sampled_from(["api", "q", "c", "u", "", "API", "nope"]), st.text(max_size=40))
KEY = st.one_of(st.text(max_size=64), st.text(min_size=1000, max_size=1500), st.just("k" * 5000))


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    import json

    service = RateLimiterService(load_config(json.dumps({"limiters": POLICIES})))
    s = Served(serve(service, "127.0.0.1", 0), service)
    yield s
    s.close()


REQUESTS = st.one_of(
    st.builds(lambda p, k, c: ("Check", pb.CheckRequest(policy=p, key=k, cost=c)), POLICY, KEY, INT64),
    st.builds(
        lambda p, ks, c: ("CheckMany", pb.CheckManyRequest(policy=p, keys=ks, cost=c)),
        POLICY,
        st.lists(st.text(max_size=20), max_size=30),
        INT64,
    ),
    st.builds(lambda p, k: ("Peek", pb.PeekRequest(policy=p, key=k)), POLICY, KEY),
    st.builds(lambda p, k, c: ("Forecast", pb.ForecastRequest(policy=p, key=k, cost=c)), POLICY, KEY, INT64),
    st.builds(lambda p, k, t: ("Debit", pb.DebitRequest(policy=p, key=k, tokens=t)), POLICY, KEY, INT64),
    st.builds(
        lambda p, k, c, h, v: ("Admit", pb.AdmitRequest(policy=p, key=k, cost=c, hold=h, value=v)),
        POLICY,
        KEY,
        INT64,
        INT64,
        INT64,
    ),
    st.builds(
        lambda i, d: ("Release", pb.ReleaseRequest(lease_id=i, dropped=d)),
        st.text(max_size=20),
        st.booleans(),
    ),
    st.builds(lambda ids: ("Heartbeat", pb.HeartbeatRequest(lease_ids=ids)), st.lists(st.text(max_size=8))),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(REQUESTS)
def test_typed_requests_get_a_reply_or_a_documented_status(served: Served, req: tuple[str, Any]) -> None:
    method, message = req
    try:
        reply = getattr(served.stub, method)(message, timeout=10)
    except grpc.RpcError as err:
        assert err.code() in ALLOWED, (method, message, err.code(), err.details())
        return
    assert method in ("Check", "CheckMany", "Peek", "Forecast", "Admit", "Release", "Heartbeat")
    if method == "CheckMany":
        assert len(reply.decisions) == len(message.keys)
    if method == "Heartbeat":
        assert len(reply.live_ids) + len(reply.reclaimed_ids) == len(message.lease_ids)
    if method == "Admit" and reply.lease_id:
        served.stub.Release(pb.ReleaseRequest(lease_id=reply.lease_id), timeout=10)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["Check", "CheckMany", "Peek", "Forecast", "Debit", "Admit", "Release", "Heartbeat"]),
    st.binary(max_size=300),
)
def test_raw_bytes_never_crash_the_server(served: Served, method: str, payload: bytes) -> None:
    call = served.channel.unary_unary(f"/throttlekit.v1.RateLimiter/{method}")
    try:
        call(payload, timeout=10)
    except grpc.RpcError as err:
        assert err.code() in ALLOWED, (method, payload, err.code(), err.details())
    assert served.check("api", "alive").allowed is not None


def test_server_still_serves_after_the_fuzzing(served: Served) -> None:
    assert served.check("q", "after-fuzz").limit == 5
