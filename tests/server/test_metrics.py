"""``/metrics`` (parsed by prometheus-client's own text parser) agrees with the decisions a test made and
with the Monitor snapshot; ``_total`` series are monotonic across analytics windows; the HTTP routes and
methods answer as specified; readiness follows the store, over HTTP and gRPC health."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import throttlekit as tk
from tests._support.redis_server import free_port
from tests._support.server import config_text, pb
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc
from throttlekit.client import MonitorBackend
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService, ServerHandle, redis_store, serve

NOW = 1_700_000_020_000  # 40 s into an epoch-aligned minute
POLICIES = {
    "api": {"strategy": "fixedWindow", "limit": 3, "period": "1h"},
    "trial": {"strategy": "fixedWindow", "limit": 1, "period": "1h", "shadow": True},
    "meter": {"tokenBudget": {"budget": 5, "windowMs": 60000}},
}


def _serve(
    clock: Any = None, store: Any = None, policies: Any = POLICIES, fail: str = "open"
) -> ServerHandle:
    if store is None:
        store = tk.MemoryStore(clock=clock) if clock is not None else None
    service = RateLimiterService(
        load_config(config_text(policies)),
        store=store,
        clock=clock,
        fail=fail,  # type: ignore[arg-type]
        close_store=True,
    )
    return serve(service, "127.0.0.1", 0, metrics_port=0)


def _get(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read().decode()
    finally:
        conn.close()


def _samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, ctype, body = _get(port, "/metrics")
    assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _check(handle: ServerHandle, policy: str, key: str, n: int) -> list[bool]:
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as ch:
        stub = pb_grpc.RateLimiterStub(ch)
        return [
            stub.Check(pb.CheckRequest(policy=policy, key=key), timeout=10).decision.allowed for _ in range(n)
        ]


def test_metrics_agree_with_decisions_and_the_snapshot_and_totals_are_monotonic() -> None:
    clock = tk.ManualClock(NOW)
    handle = _serve(clock)
    try:
        assert _check(handle, "api", "k", 5) == [True] * 3 + [False] * 2
        m = _samples(handle.metrics_port)
        with MonitorBackend(handle.address, timeout=10) as mon:
            snap = {p.name: p for p in mon.get_snapshot().policies}
        assert m[("throttlekit_allowed_total", (("policy", "api"),))] == snap["api"].allowed == 3
        assert m[("throttlekit_denied_total", (("policy", "api"),))] == snap["api"].denied == 2
        assert m[("throttlekit_window_allowed", (("policy", "api"),))] == 3
        assert m[("throttlekit_limit", (("policy", "api"),))] == 3
        assert m[("throttlekit_decision_latency_seconds_count", (("policy", "api"),))] == 5
        assert m[("throttlekit_latency_p99_ms", (("policy", "api"),))] > 0
        assert m[("throttlekit_store_errors_total", (("store", "memory"),))] == 0
        assert m[("throttlekit_store_up", (("store", "memory"),))] == 1
        assert ("throttlekit_config_reloads_total", (("result", "ok"),)) in m
        clock.advance(60_000)  # a new analytics window: the window gauges restart, the counters do not
        assert _check(handle, "api", "k", 1) == [False]
        m = _samples(handle.metrics_port)
        assert m[("throttlekit_allowed_total", (("policy", "api"),))] == 3
        assert m[("throttlekit_denied_total", (("policy", "api"),))] == 3
        assert m[("throttlekit_window_allowed", (("policy", "api"),))] == 0
        assert m[("throttlekit_window_denied", (("policy", "api"),))] == 1
    finally:
        handle.close(grace=1)


def test_a_shadow_policy_answers_allowed_and_counts_would_be_denials() -> None:
    clock = tk.ManualClock(NOW)
    handle = _serve(clock)
    try:
        assert _check(handle, "trial", "k", 4) == [True] * 4
        m = _samples(handle.metrics_port)
        assert m[("throttlekit_denied_total", (("policy", "trial"),))] == 3
        assert m[("throttlekit_shadow_denied_total", (("policy", "trial"),))] == 3
        assert m[("throttlekit_allowed_total", (("policy", "trial"),))] == 1
        snap = handle.hub.snapshot() if handle.hub else {}
        assert [d.get("shadow") for d in snap["recentDenials"]] == [True] * 3
    finally:
        handle.close(grace=1)


def test_http_routes_and_methods() -> None:
    handle = _serve()
    try:
        port = handle.metrics_port
        assert _get(port, "/healthz")[::2] == (200, "ok\n")
        assert _get(port, "/health")[::2] == (200, "ok\n")
        assert _get(port, "/metrics?x=1")[0] == 200
        assert _get(port, "/nope")[::2] == (404, "not found (try /metrics or /healthz)\n")
        assert _get(port, "/metrics", "POST")[::2] == (405, "method not allowed\n")
        status, ctype, body = _get(port, "/snapshot")  # the hub's snapshot, to loopback callers
        assert (status, ctype) == (200, "application/json")
        assert [p["name"] for p in json.loads(body)["policies"]] == ["api", "trial"]
        status, ctype, body = _get(port, "/ready")
        assert (status, ctype) == (200, "application/json") and json.loads(body)["ready"] is True
        # every family is present with HELP and TYPE even before traffic
        _, _, text = _get(port, "/metrics")
        for name in (
            "throttlekit_allowed",
            "throttlekit_denied",
            "throttlekit_denied_by_axis",
            "throttlekit_limit",
            "throttlekit_latency_p50_ms",
            "throttlekit_latency_p99_ms",
            "throttlekit_guard_inflight",
            "throttlekit_guard_limit",
            "throttlekit_guard_fenced",
        ):
            assert f"# HELP {name}" in text and f"# TYPE {name}" in text
    finally:
        handle.close(grace=1)


@pytest.mark.redis
def test_readiness_follows_the_store_over_http_and_grpc_health() -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    dead = redis_store(f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.5")
    handle = _serve(store=dead, policies={"api": POLICIES["api"]}, fail="closed")
    try:
        status, _, body = _get(handle.metrics_port, "/ready")
        assert status == 503 and json.loads(body)["store"] == "redis" and not json.loads(body)["ready"]
        assert _check(handle, "api", "k", 1) == [False]  # fail closed, counted
        m = _samples(handle.metrics_port)
        assert m[("throttlekit_failmode_decisions_total", (("policy", "api"),))] == 1
        assert m[("throttlekit_store_errors_total", (("store", "redis"),))] >= 1
        assert m[("throttlekit_store_up", (("store", "redis"),))] == 0
        with grpc.insecure_channel(handle.address) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            store = health.Check(health_pb2.HealthCheckRequest(service="throttlekit.store"), timeout=10)
            assert store.status == health_pb2.HealthCheckResponse.NOT_SERVING
            whole = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert whole.status == health_pb2.HealthCheckResponse.SERVING  # fail mode answers: still serving
    finally:
        handle.close(grace=1)


def test_snapshot_over_http_is_refused_to_a_non_loopback_caller() -> None:
    import socket

    from tests._support.env import IN_CI

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # no packet is sent: picks the route's source address
            ext = str(s.getsockname()[0])
        except OSError:
            ext = ""
    if not ext or ext.startswith("127."):
        if IN_CI:
            pytest.fail("no non-loopback IPv4 address to test from")
        pytest.skip("no non-loopback IPv4 address to test from")
    service = RateLimiterService(load_config(config_text(POLICIES)))
    handle = serve(service, "127.0.0.1", 0, metrics_port=0, metrics_host="0.0.0.0")
    try:
        conn = http.client.HTTPConnection(ext, handle.metrics_port, timeout=10)
        conn.request("GET", "/snapshot")
        resp = conn.getresponse()
        assert resp.status == 403 and b"loopback" in resp.read()
        conn.close()
        conn = http.client.HTTPConnection(ext, handle.metrics_port, timeout=10)
        conn.request("GET", "/metrics")  # the aggregate series are served to anyone who can reach the port
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        handle.close(grace=1)
