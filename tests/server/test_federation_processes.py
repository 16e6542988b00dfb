"""The federation proof with real processes: three ``throttlekit-server`` processes with different
``--region`` on one store (Redis, then Postgres), a federated fixedWindow of L per window, skewed traffic
from three client threads (one per region) over several real windows. Each allowed decision carries its
window's end (``reset_at``), so admissions are counted per window: every window admits at most L, and a
window whose demand exceeded its budget (it saw denials) leaves at most regions x batch unused. The
measurements are printed (``pytest -s``).

Wall-clock windows, but the assertions are invariants that no scheduling can break: a slow machine only
sends fewer requests (a window without denials is not counted as saturated)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import grpc
import pytest

from tests._support.server import launch, pb, wait_listening
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc

L, WINDOW_MS, BATCH, REGIONS = 100, 1000, 16, ("eu", "us", "ap")
RUN_S = 3.5
#: seconds each region's client pauses between calls: skewed traffic (eu hammers, ap trickles)
PAUSE = {"eu": 0.0, "us": 0.002, "ap": 0.08}

CONFIG = f"""version: 1
limiters:
  global: {{ strategy: fixedWindow, limit: {L}, windowMs: {WINDOW_MS}, federated: {{ batch: {BATCH} }} }}
"""


def _store_args(kind: str, request: pytest.FixtureRequest) -> list[str]:
    prefix = f"tkfedp-{uuid.uuid4().hex[:8]}"
    if kind == "redis":
        from tests._support.env import REAL_REDIS, REDIS_URL

        if REAL_REDIS is None:
            pytest.skip(f"the federation proof needs a real Redis at {REDIS_URL}")
        return ["--redis", REDIS_URL, "--redis-prefix", prefix]
    from tests.stores.conftest import PG_URL, _pg_reachable  # shared helpers, not a test module

    why = _pg_reachable(PG_URL)
    if why is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    table = f"tkfed_{uuid.uuid4().hex[:8]}"
    request.addfinalizer(lambda: _drop(PG_URL, table))
    return ["--postgres-url", PG_URL, "--postgres-table", table, "--postgres-prefix", prefix]


def _drop(url: str, table: str) -> None:
    from throttlekit.stores.postgres import PostgresStore

    s = PostgresStore(url, table=table, sweep_interval_ms=0)
    s.drop_table()
    s.close()


def _client(target: str, pause: float, until: float, out: list[tuple[bool, int]]) -> None:
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.RateLimiterStub(ch)
        req = pb.CheckRequest(policy="global", key="tenant", cost=1)
        while time.monotonic() < until:
            d = stub.Check(req, timeout=30).decision
            out.append((d.allowed, d.reset_at))
            if pause:
                time.sleep(pause)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    [pytest.param("redis", marks=pytest.mark.redis), pytest.param("postgres", marks=pytest.mark.postgres)],
)
def test_three_regions_share_one_budget(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    cfg = tmp_path / "fed.yaml"
    cfg.write_text(CONFIG)
    args = _store_args(kind, request)
    targets = []
    for region in REGIONS:
        proc = launch("--config", str(cfg), "--port", "0", "--fail", "closed", "--region", region, *args)
        processes.append(proc)
        targets.append(wait_listening(proc))
    results: dict[str, list[tuple[bool, int]]] = {r: [] for r in REGIONS}
    until = time.monotonic() + RUN_S
    threads = [
        threading.Thread(target=_client, args=(t, PAUSE[r], until, results[r]))
        for r, t in zip(REGIONS, targets)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for p in processes:
        p.terminate()
    admitted: Counter[int] = Counter()
    denied: Counter[int] = Counter()
    per_region: dict[int, Counter[str]] = {}
    for region, decisions in results.items():
        for allowed, window_end in decisions:
            if allowed:
                admitted[window_end] += 1
                per_region.setdefault(window_end, Counter())[region] += 1
            else:
                denied[window_end] += 1
    windows = sorted(set(admitted) | set(denied))
    assert len(windows) >= 3, windows
    full = windows[1:-1]  # the first and last windows were only partly driven
    saturated = [w for w in full if denied[w] > 0]
    print(f"\n{kind}: L={L}, batch={BATCH}, regions={len(REGIONS)}")
    for w in windows:
        mark = "saturated" if w in saturated else "partial" if w not in full else "unsaturated"
        regions = dict(per_region.get(w, {}))
        print(
            f"  window ending {w}: admitted {admitted[w]:3d}, unused {L - admitted[w]:3d}, {mark} {regions}"
        )
    assert max(admitted.values()) <= L, admitted
    assert saturated, "no window saw more demand than its budget: the machine was too slow to prove anything"
    assert max(L - admitted[w] for w in saturated) <= len(REGIONS) * BATCH
    for p in processes:
        assert p.wait(timeout=30) == 0
