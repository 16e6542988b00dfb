"""Draining on SIGTERM, with a real ``throttlekit-server`` process: health reports NOT_SERVING while the
port still answers Check for ``--drain-grace`` seconds, then the port closes; a call already in flight
when the signal arrives finishes with its real decision (never CANCELLED)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests._support.redis_server import OwnRedis
from tests._support.server import launch, pb, wait_listening
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc

CONFIG = "limiters:\n  api: { strategy: fixedWindow, limit: 100, period: 1h }\n"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    config = tmp_path / "policies.yaml"
    config.write_text(CONFIG)
    proc = launch("--config", str(config), "--port", "0", *args)
    return proc, wait_listening(proc)


def _health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status  # type: ignore[no-any-return]


def _until(predicate: object, what: str, limit_s: float = 20) -> None:
    """Poll ``predicate`` (bounded): process start-up and signal delivery, not the behaviour under test."""
    deadline = time.monotonic() + limit_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_sigterm_reports_not_serving_while_still_answering_then_closes(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    proc, address = _start(tmp_path, "--drain-grace", "3")
    processes.append(proc)
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.RateLimiterStub(channel)
        assert _health(channel) == SERVING
        assert stub.Check(pb.CheckRequest(policy="api", key="k"), timeout=5).decision.remaining == 99
        proc.send_signal(signal.SIGTERM)
        _until(lambda: _health(channel) == NOT_SERVING, "NOT_SERVING")
        assert proc.poll() is None  # draining: still running, still answering
        assert stub.Check(pb.CheckRequest(policy="api", key="k"), timeout=5).decision.remaining == 98
    with grpc.insecure_channel(address) as fresh:  # a new connection during the drain is still accepted
        assert _health(fresh) == NOT_SERVING
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "SIGTERM received, draining: health NOT_SERVING for 3 s" in err
    with grpc.insecure_channel(address) as after, pytest.raises(grpc.RpcError) as info:
        _health(after)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # the port is closed


def test_a_second_signal_skips_the_rest_of_the_drain(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    proc, address = _start(tmp_path, "--drain-grace", "600")
    processes.append(proc)
    with grpc.insecure_channel(address) as channel:
        proc.send_signal(signal.SIGTERM)
        _until(lambda: _health(channel) == NOT_SERVING, "NOT_SERVING")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)  # not 600 s
    assert proc.returncode == 0 and "received again: stopping now" in err


@pytest.mark.redis
def test_a_call_in_flight_at_sigterm_finishes_with_its_decision(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    """Redis is paused (CLIENT PAUSE) so a Check is held in flight inside the server when SIGTERM
    arrives; it completes with the real decision (fail closed would deny) once Redis resumes."""
    own = OwnRedis()
    own.start()
    try:
        proc, address = _start(tmp_path, "--redis", own.url, "--fail", "closed", "--drain-grace", "0.2")
        processes.append(proc)
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.RateLimiterStub(channel)
            assert stub.Check(pb.CheckRequest(policy="api", key="k"), timeout=5).decision.remaining == 99
            client = own.client()
            assert client.execute_command("CLIENT", "PAUSE", "700", "ALL")
            pending = stub.Check.future(pb.CheckRequest(policy="api", key="k"), timeout=20)
            proc.send_signal(signal.SIGTERM)
            decision = pending.result().decision  # raises if CANCELLED
            assert decision.allowed and decision.remaining == 98
            client.close()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "store outage" not in err
    finally:
        own.stop()
