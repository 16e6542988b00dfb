"""The Monitor door over gRPC: the snapshot counts what a test just decided (read by our MonitorBackend and
by throttlekit-py 0.5.1's, unchanged), Watch delivers each denial with its numbers and drops for a reader
that stops reading, and access is loopback-only unless a secret is configured: tested from a real
non-loopback address of this machine."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import grpc
import pytest

import throttlekit as tk
from tests._support.env import IN_CI
from tests._support.server import Served, Starter, config_text, pb
from tests._support.tkpy import run_tkpy
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc
from throttlekit.client import AsyncMonitorBackend, MonitorBackend
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService, serve
from throttlekit.server._monitor import WATCH_QUEUE, is_loopback_peer

NOW = 1_700_000_020_000
POLICIES = {
    "api": {"strategy": "fixedWindow", "limit": 3, "period": "1m"},
    "burst": {"strategy": "gcra", "limit": 2, "period": "1m"},
    "meter": {"tokenBudget": {"budget": 5, "windowMs": 60000}},
}


def _traffic(served: Served) -> None:
    """api: 5 checks of k1 (3 allowed, 2 denied) + 1 of k2; burst: 3 checks (2 allowed, 1 denied)."""
    for _ in range(5):
        served.check("api", "k1")
    served.check("api", "k2")
    for _ in range(3):
        served.check("burst", "b")


def test_our_monitor_backend_reads_the_decisions_just_made(start_server: Starter) -> None:
    clock = tk.ManualClock(NOW)
    served = start_server(POLICIES, store=tk.MemoryStore(clock=clock), clock=clock)
    _traffic(served)
    with MonitorBackend(served.target, timeout=10) as mon:
        snap = mon.get_snapshot()
    assert (snap.mode, snap.window_ms, snap.lens_version) == ("process", 60_000, "0.3.0")
    assert snap.generated_at == NOW and snap.node_id == served.handle.address
    by = {p.name: p for p in snap.policies}
    assert list(by) == ["api", "burst"]  # meters are not listed (spec 5.2)
    assert (by["api"].allowed, by["api"].denied, by["api"].limit, by["api"].strategy) == (
        4,
        2,
        3,
        "fixedWindow",
    )
    assert (by["burst"].allowed, by["burst"].denied, by["burst"].kind) == (2, 1, "limiter")
    raw = snap.parsed()
    api = raw["policies"][0]
    assert api["analytics"]["topRequested"][0] == {"key": "k1", "count": 5}
    assert api["analytics"]["topDenied"] == [{"key": "k1", "count": 2}]
    assert [d["policy"] for d in raw["recentDenials"]] == ["api", "api", "burst"]
    assert raw["health"] == {"backend": "memory", "failMode": "open"}


def test_typed_fields_of_the_snapshot_message(start_server: Starter) -> None:
    clock = tk.ManualClock(NOW)
    served = start_server(POLICIES, store=tk.MemoryStore(clock=clock), clock=clock)
    _traffic(served)
    stub = pb_grpc.MonitorStub(served.channel)
    snap = stub.GetSnapshot(pb.GetSnapshotRequest(), timeout=10).snapshot
    api = snap.policies[0]
    assert api.latency.n == 6 and api.latency.p99_ms >= api.latency.p50_ms > 0
    assert [(k.key, k.count) for k in api.top_denied] == [("k1", 2)]
    assert [(k.key, k.count) for k in api.top_requested] == [("k1", 5), ("k2", 1)]
    last = snap.recent_denials[-1]
    assert (last.policy, last.key, last.limit, last.remaining, last.at) == ("burst", "b", 2, 0, NOW)
    assert last.retry_after_ms > 0 and last.axis == ""
    assert json.loads(snap.raw_json)["meta"]["generatedAt"] == NOW


TKPY = """
import json, sys
from throttlekit import MonitorBackend
with MonitorBackend(sys.argv[1]) as mon:
    s = mon.get_snapshot()
print(json.dumps({"mode": s.mode, "window": s.window_ms, "node": s.node_id,
                  "policies": [[p.name, p.kind, p.strategy, p.allowed, p.denied, p.limit] for p in s.policies],
                  "raw": s.parsed()["policies"][0]["analytics"]["allowed"]}))
"""


def test_throttlekit_py_monitor_backend_reads_our_snapshot_unchanged(start_server: Starter) -> None:
    clock = tk.ManualClock(NOW)
    served = start_server(POLICIES, store=tk.MemoryStore(clock=clock), clock=clock)
    _traffic(served)
    theirs = json.loads(run_tkpy(TKPY, served.target))
    assert theirs["mode"] == "process" and theirs["window"] == 60_000
    assert theirs["node"] == served.handle.address
    assert theirs["policies"] == [
        ["api", "limiter", "fixedWindow", 4, 2, 3],
        ["burst", "limiter", "gcra", 2, 1, 2],
    ]
    assert theirs["raw"] == 4


def test_watch_sees_each_denial_with_its_numbers_and_filters_by_policy(start_server: Starter) -> None:
    clock = tk.ManualClock(NOW)
    served = start_server(POLICIES, store=tk.MemoryStore(clock=clock), clock=clock)
    got: dict[str, list[Any]] = {"all": [], "burst": []}
    mon = MonitorBackend(served.target)
    streams = {"all": mon.watch(), "burst": mon.watch("burst")}
    ready = threading.Barrier(3)

    def read(name: str, n: int) -> None:
        ready.wait()
        for d in streams[name]:
            got[name].append(d)
            if len(got[name]) == n:
                break

    readers = [threading.Thread(target=read, args=a) for a in (("all", 3), ("burst", 1))]
    for t in readers:
        t.start()
    ready.wait()
    door = served.handle.inner.monitor
    deadline = time.monotonic() + 10
    while len(door.watchers) < 2 and time.monotonic() < deadline:  # both streams subscribed
        time.sleep(0.01)
    _traffic(served)
    for t in readers:
        t.join(10)
    for s in streams.values():
        s.close()
    mon.close()
    assert [(d.policy, d.key, d.limit, d.remaining) for d in got["all"]] == [
        ("api", "k1", 3, 0),
        ("api", "k1", 3, 0),
        ("burst", "b", 2, 0),
    ]
    assert all(d.at == NOW and d.retry_after_ms > 0 for d in got["all"])
    assert [(d.policy, d.key) for d in got["burst"]] == [("burst", "b")]


def test_a_reader_that_stops_reading_drops_events_and_never_slows_decisions(start_server: Starter) -> None:
    served = start_server({"deny": {"strategy": "fixedWindow", "limit": 1, "period": "1h"}})
    stub = pb_grpc.MonitorStub(served.channel)
    call = stub.Watch(pb.WatchRequest())  # never read
    door = served.handle.inner.monitor
    deadline = time.monotonic() + 10
    while not door.watchers and time.monotonic() < deadline:
        time.sleep(0.01)
    (watcher,) = door.watchers
    rs = served.stub.CheckMany(pb.CheckManyRequest(policy="deny", keys=["k"] * 1000), timeout=30).decisions
    assert sum(d.allowed for d in rs) == 1
    for _ in range(3):
        served.stub.CheckMany(pb.CheckManyRequest(policy="deny", keys=["x" * 500] * 1000), timeout=30)
    assert watcher.queue.qsize() <= WATCH_QUEUE
    assert watcher.dropped > 0  # rate cap (500/s) and the bounded queue: dropped, not buffered
    assert watcher.sent + watcher.queue.qsize() + watcher.dropped == 999 + 2999
    call.cancel()


def test_monitor_off_is_unimplemented_and_health_lists_the_monitor(start_server: Starter) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    served = start_server(POLICIES)
    health = health_pb2_grpc.HealthStub(served.channel)
    status = health.Check(health_pb2.HealthCheckRequest(service="throttlekit.v1.Monitor"), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    service = RateLimiterService(load_config(config_text(POLICIES)))
    handle = serve(service, "127.0.0.1", 0, monitor=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as ch:
            with pytest.raises(grpc.RpcError) as info:
                pb_grpc.MonitorStub(ch).GetSnapshot(pb.GetSnapshotRequest(), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
            with pytest.raises(grpc.RpcError) as info:
                health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service="throttlekit.v1.Monitor"), timeout=10
                )
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert handle.hub is None and service.tap.observers == ()
    finally:
        handle.close(grace=1)


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.8.9.1:5000", True),
        ("ipv6:[::1]:5000", True),
        ("ipv6:[::ffff:127.0.0.1]:5000", True),
        ("unix:/tmp/sock", True),
        ("ipv4:192.0.2.2:5000", False),
        ("ipv6:[fd00::2]:5000", False),
        ("ipv6:[::ffff:10.0.0.1]:5000", False),
        ("ipv4:128.0.0.1:5000", False),
    ],
)
def test_loopback_peer_rule(peer: str, local: bool) -> None:
    assert is_loopback_peer(peer) is local


def _external_address() -> str:
    """A non-loopback IPv4 address of this machine (the source address of its default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # no packet is sent: this only picks the route's source
            addr = str(s.getsockname()[0])
        except OSError:
            addr = ""
    if not addr or addr.startswith("127."):
        msg = "this machine has no non-loopback IPv4 address to test the Monitor's remote path"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return addr


def _remote_code(target: str, metadata: Any = None) -> grpc.StatusCode | None:
    with grpc.insecure_channel(target) as ch:
        try:
            pb_grpc.MonitorStub(ch).GetSnapshot(pb.GetSnapshotRequest(), metadata=metadata, timeout=10)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    return None


def test_a_non_loopback_caller_needs_the_secret() -> None:
    ext = _external_address()
    service = RateLimiterService(load_config(config_text(POLICIES)))
    open_ = serve(service, "0.0.0.0", 0)
    secret_service = RateLimiterService(load_config(config_text(POLICIES)))
    locked = serve(secret_service, "0.0.0.0", 0, monitor_secret="s3cret")
    try:
        assert _remote_code(f"127.0.0.1:{open_.port}") is None
        assert _remote_code(f"{ext}:{open_.port}") == grpc.StatusCode.UNAUTHENTICATED
        with (
            MonitorBackend(f"{ext}:{open_.port}") as mon,
            pytest.raises(tk.ThrottleKitError, match="loopback-only"),
        ):
            mon.get_snapshot()
        # with a secret: every caller presents it, loopback included
        assert _remote_code(f"127.0.0.1:{locked.port}") == grpc.StatusCode.UNAUTHENTICATED
        assert (
            _remote_code(f"{ext}:{locked.port}", (("x-monitor-secret", "wrong"),))
            == grpc.StatusCode.UNAUTHENTICATED
        )
        assert _remote_code(f"{ext}:{locked.port}", (("x-monitor-secret", "s3cret"),)) is None
        assert _remote_code(f"{ext}:{locked.port}", (("authorization", "Bearer s3cret"),)) is None
        assert _remote_code(f"{ext}:{locked.port}", (("authorization", "Basic s3cret"),)) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        with MonitorBackend(f"{ext}:{locked.port}", secret="s3cret") as mon:
            assert [p.name for p in mon.get_snapshot().policies] == ["api", "burst"]
        # Watch is guarded alike
        with grpc.insecure_channel(f"{ext}:{open_.port}") as ch:
            with pytest.raises(grpc.RpcError) as info:
                next(iter(pb_grpc.MonitorStub(ch).Watch(pb.WatchRequest(), timeout=10)))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        open_.close(grace=1)
        locked.close(grace=1)


def test_async_monitor_backend(start_server: Starter) -> None:
    clock = tk.ManualClock(NOW)
    served = start_server(POLICIES, store=tk.MemoryStore(clock=clock), clock=clock)
    _traffic(served)

    async def go() -> Any:
        async with AsyncMonitorBackend(served.target, timeout=10) as mon:
            snap = await mon.get_snapshot()
            stream = mon.watch("api")
            first = asyncio.ensure_future(stream.__anext__())
            door = served.handle.inner.monitor
            for _ in range(1000):
                if door.watchers:
                    break
                await asyncio.sleep(0.01)
            await asyncio.to_thread(served.check, "api", "k1")
            denial = await asyncio.wait_for(first, 10)
            await stream.aclose()
            return snap, denial

    snap, denial = asyncio.run(go())
    assert [(p.name, p.allowed, p.denied) for p in snap.policies] == [("api", 4, 2), ("burst", 2, 1)]
    assert (denial.policy, denial.key, denial.remaining) == ("api", "k1", 0)


def test_serve_flags_monitor_secret_from_the_environment_and_off(processes: list[Any], tmp_path: Any) -> None:
    from tests._support.server import launch, wait_listening

    cfg = tmp_path / "p.json"
    cfg.write_text(config_text(POLICIES))
    proc = launch("--config", str(cfg), "--port", "0", env={"THROTTLEKIT_MONITOR_SECRET": "envsecret"})
    off = launch("--config", str(cfg), "--port", "0", "--monitor", "off")
    processes.extend([proc, off])
    line = proc.stdout.readline()
    assert "monitor:secret" in line, line
    target = line.split("listening on ", 1)[1].split(" ", 1)[0]
    off_target = wait_listening(off)
    with MonitorBackend(target, secret="envsecret", timeout=10) as mon:
        assert [p.name for p in mon.get_snapshot().policies] == ["api", "burst"]
    with (
        MonitorBackend(target, timeout=10) as mon,
        pytest.raises(tk.ThrottleKitError, match="UNAUTHENTICATED"),
    ):
        mon.get_snapshot()
    with MonitorBackend(off_target, timeout=10) as mon, pytest.raises(tk.ThrottleKitError):
        mon.get_snapshot()
    for p in (proc, off):
        p.terminate()
    proc.communicate(timeout=30)
    off.communicate(timeout=30)
    assert proc.returncode == 0 and off.returncode == 0
