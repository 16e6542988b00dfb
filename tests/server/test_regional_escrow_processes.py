"""The regional escrow with real processes: two regions, each with two ``throttlekit-server`` processes
sharing the region's own regional store (``--regional-store``, a redis-server per region), and one
coordinator store (a third redis-server) for both regions; a federated fixedWindow of L per window, one
client thread per process. Each allowed decision carries its window's end, so admissions are counted per
window: every window admits at most L, with and without a coordinator outage mid-run.

The outage: the coordinator's redis-server is frozen (SIGSTOP) for longer than two windows, then thawed.
With ``onCoordinatorOutage: regional-only`` the regions keep admitting from what their escrows hold for
the window the freeze began in, admit nothing in a window that began during the freeze (no coordinator
granted anything for it), and resume once it answers. Wall-clock windows; the assertions are invariants
(a slow machine only sends fewer requests). The measurements are printed (``pytest -s``)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest

from tests._support.redis_server import OwnRedis
from tests._support.server import launch, pb, wait_listening
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.slow, pytest.mark.redis]

WINDOW_MS, BATCH, ESCROW_BATCH = 1000, 8, 32
REGIONS = ("eu", "eu", "us", "us")  # two processes per region


def _config(limit: int, escrow_batch: int = ESCROW_BATCH) -> str:
    return f"""version: 1
limiters:
  global:
    strategy: fixedWindow
    limit: {limit}
    windowMs: {WINDOW_MS}
    federated: {{ batch: {BATCH}, escrowBatch: {escrow_batch}, onCoordinatorOutage: regional-only,
                 coordinatorHealthCheckMs: 300 }}
"""


def _client(target: str, pause: float, until: float, out: list[tuple[bool, int, float]]) -> None:
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.RateLimiterStub(ch)
        req = pb.CheckRequest(policy="global", key="tenant", cost=1)
        while time.monotonic() < until:
            d = stub.Check(req, timeout=30).decision
            out.append((d.allowed, d.reset_at, time.time()))
            if pause:
                time.sleep(pause)


@pytest.mark.parametrize("outage", [False, True], ids=["steady", "coordinator-frozen"])
def test_two_regions_with_regional_escrows_share_one_budget(
    outage: bool, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    # the outage run keeps demand below L and leases big escrow chunks, so the escrows hold units when
    # the coordinator freezes
    limit, escrow_batch = (400, 128) if outage else (100, ESCROW_BATCH)
    pauses = (0.01, 0.01, 0.01, 0.01) if outage else (0.0, 0.002, 0.01, 0.05)
    run_s = 5.5 if outage else 3.5
    cfg = tmp_path / "fed.yaml"
    cfg.write_text(_config(limit, escrow_batch))
    coordinator = OwnRedis()
    regional = {"eu": OwnRedis(), "us": OwnRedis()}
    servers = [coordinator, *regional.values()]
    for s in servers:
        s.start()
    try:
        targets = []
        for region in REGIONS:
            proc = launch(
                "--config", str(cfg), "--port", "0", "--fail", "closed", "--region", region,
                "--redis", coordinator.url, "--regional-store", regional[region].url,
            )  # fmt: skip
            processes.append(proc)
            targets.append(wait_listening(proc))
        results: list[list[tuple[bool, int, float]]] = [[] for _ in REGIONS]
        until = time.monotonic() + run_s
        threads = [
            threading.Thread(target=_client, args=(t, p, until, out))
            for t, p, out in zip(targets, pauses, results)
        ]
        for t in threads:
            t.start()
        frozen = (0.0, 0.0)
        if outage:
            time.sleep(1.0)
            # freeze ~150 ms into a window, so most of the window runs on what the escrows hold
            time.sleep((0.15 - time.time() % (WINDOW_MS / 1000)) % (WINDOW_MS / 1000))
            frozen_at = time.time()
            coordinator.freeze()
            time.sleep(2.3)  # longer than two windows: at least one window begins and ends frozen
            coordinator.thaw()
            frozen = (frozen_at, time.time())
        for t in threads:
            t.join(timeout=120)
        for p in processes:
            p.terminate()
        for p in processes:
            assert p.wait(timeout=30) == 0
    finally:
        if coordinator.proc is not None:
            coordinator.thaw()
        for s in servers:
            s.stop()
    admitted: Counter[int] = Counter()
    denied: Counter[int] = Counter()
    for decisions in results:
        for allowed, window_end, _ in decisions:
            (admitted if allowed else denied)[window_end] += 1
    windows = sorted(set(admitted) | set(denied))
    print(f"\nL={limit}, batch={BATCH}, escrowBatch={escrow_batch}, outage={outage}")
    for w in windows:
        print(f"  window ending {w}: admitted {admitted[w]:3d}, denied {denied[w]:4d}")
    assert len(windows) >= 3, windows
    assert max(admitted.values()) <= limit, admitted
    if not outage:
        full = windows[1:-1]
        saturated = [w for w in full if denied[w] > 0]
        assert saturated, (
            "no window saw more demand than its budget: the machine was too slow to prove anything"
        )
        # each region may strand the rest of its escrow's last grant, each process the rest of its batch
        assert max(limit - admitted[w] for w in saturated) <= 2 * ESCROW_BATCH + len(REGIONS) * BATCH
        return
    start, end = frozen
    first = (
        int(start * 1000) // WINDOW_MS * WINDOW_MS + WINDOW_MS
    )  # the end of the window the freeze began in
    during = [
        (allowed, w) for decisions in results for allowed, w, t in decisions if start + 0.05 < t < end - 0.05
    ]
    from_escrow = sum(1 for allowed, w in during if allowed and w == first)
    print(
        f"  frozen {start:.3f}..{end:.3f}: admitted from the escrows {from_escrow} in the window ending {first}"
    )
    assert from_escrow > 0, "no admission while the coordinator was frozen: the escrows served nothing"
    # a window that began and ended while the coordinator was frozen admitted nothing: no grant existed
    # (a decision synthesized while closed carries reset_at 0: such a window has no admissions)
    inside = [w for w in range(first + WINDOW_MS, int(end * 1000), WINDOW_MS) if w < end * 1000 - 50]
    assert inside, (start, end)
    assert all(admitted[w] == 0 for w in inside), {w: admitted[w] for w in inside}
    # and the regions resumed once it answered again
    after = [w for w in windows if (w - WINDOW_MS) / 1000 > end + 0.05]
    assert any(admitted[w] > 0 for w in after), {w: admitted[w] for w in after}


def test_the_regional_store_is_checked_at_startup(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    """Like every store: one that answers but cannot be used (a database Redis does not have) refuses to
    start; one that does not answer starts with a warning saying what happens meanwhile; memory is refused."""
    from tests._support.env import REDIS_URL
    from tests._support.redis_server import free_port

    cfg = tmp_path / "fed.yaml"
    cfg.write_text(_config(100))
    base = ("--config", str(cfg), "--port", "0", "--redis", REDIS_URL)
    bad = launch(*base, "--regional-store", "redis://127.0.0.1:6379/9999")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 1 and "the regional store answered but cannot be used" in err, err
    mem = launch(*base, "--regional-store", "memory://")
    _, err = mem.communicate(timeout=60)
    assert mem.returncode == 1 and "--regional-store" in err and "cannot live in memory" in err, err
    down = launch(*base, env={"TK_REGIONAL_STORE": f"redis://127.0.0.1:{free_port()}/0"})
    processes.append(down)
    wait_listening(down)
    down.terminate()
    _, err = down.communicate(timeout=60)
    assert "the regional store is not reachable yet" in err
    assert "lease from the coordinator directly until it is" in err, err
