"""``--workers N``: N processes share one port on a shared store (one limit for all of them), each says
which worker answered, the supervisor's /metrics combines them, signals reach every worker, and the
memory store is refused with the reason."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests._support.env import REDIS_URL, redis_client
from tests._support.server import config_text, launch, pb
from tests._support.stores import unique_prefix
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc

pytestmark = pytest.mark.redis


def test_the_memory_store_is_refused_with_the_reason(tmp_path: Path) -> None:
    cfg = tmp_path / "p.json"
    cfg.write_text(config_text({"api": {"strategy": "gcra", "limit": 1, "period": "1m"}}))
    proc = launch("--config", str(cfg), "--port", "0", "--workers", "2")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--workers 2 needs a shared store" in err and "2 times every limit" in err


def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    conn.close()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }


def test_workers_share_the_port_and_one_limit(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    redis_client()  # fails under CI, skips elsewhere, without a real Redis
    prefix = unique_prefix("tkw")
    cfg = tmp_path / "p.json"
    cfg.write_text(config_text({"api": {"strategy": "fixedWindow", "limit": 30, "period": "1h"}}))
    proc = launch(
        "--config", str(cfg), "--port", "0", "--workers", "2", "--redis", REDIS_URL,
        "--redis-prefix", prefix, "--metrics-port", "0", "--drain-grace", "0",
    )  # fmt: skip
    processes.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "workers:2" in line, line + (proc.stderr.read() if proc.stderr else "")
    target = line.split("listening on ", 1)[1].split(" ", 1)[0]
    metrics_port = int(line.split("metrics:", 1)[1].split(",", 1)[0].split("]", 1)[0])
    allowed, nodes = 0, set()
    for _ in range(40):  # a new connection each time: the kernel spreads them over the workers
        with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            d = pb_grpc.RateLimiterStub(ch).Check(pb.CheckRequest(policy="api", key="k"), timeout=10).decision
            allowed += d.allowed
            snap = pb_grpc.MonitorStub(ch).GetSnapshot(pb.GetSnapshotRequest(), timeout=10).snapshot
            nodes.add(snap.meta.node_id.rsplit("#", 1)[1])
    assert allowed == 30  # one limit across the workers (the shared store)
    assert nodes == {"w0", "w1"}
    m = _metrics(metrics_port)
    per_worker = {w: m[("throttlekit_allowed_total", (("policy", "api"), ("worker", w)))] for w in ("0", "1")}
    denied = sum(m[("throttlekit_denied_total", (("policy", "api"), ("worker", w)))] for w in ("0", "1"))
    assert sum(per_worker.values()) == 30 and denied == 10 and all(per_worker.values())
    conn = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=10)
    conn.request("GET", "/ready")
    resp = conn.getresponse()
    ready: dict[str, Any] = json.loads(resp.read())
    assert resp.status == 200 and [w["worker"] for w in ready["workers"]] == [0, 1]
    conn = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=10)
    conn.request("GET", "/snapshot")  # the combined Monitor view: the workers' snapshots summed
    combined: dict[str, Any] = json.loads(conn.getresponse().read())
    (api,) = combined["policies"]
    assert (api["allowed"], api["denied"], api["totals"]["allowed"]) == (30, 10, 30)
    assert combined["meta"]["workers"] == 2 and len(combined["recentDenials"]) == 10
    assert sorted(w["meta"]["nodeId"].rsplit("#", 1)[1] for w in combined["workers"]) == ["w0", "w1"]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err.count("SIGTERM received, draining") == 2  # each worker drained
    time.sleep(0)
