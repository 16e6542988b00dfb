"""distributedConcurrency: three server processes on one Redis (and on one Postgres) hold one in-flight
ceiling pinned at 12. Thirty client threads spread over the servers never hold more than 12 slots at once
(counted client-side, between a granted Admit and its Release), yet more than 12 are admitted over time;
greedy holders reach exactly 12; after ``kill -9`` of one server its share is usable by the two others
within the coordinator lease plus a beat (the measured time is printed: ``pytest -s``)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import throttlekit as tk
from tests._support.fleet import Fleet

pytestmark = pytest.mark.slow

CEILING, WORKERS, HEARTBEAT_MS = 12, 30, 200
CONFIG = f"""version: 1
limiters:
  api: {{ strategy: gcra, limit: 100, period: 1s }}
  fleet:
    distributedConcurrency: {{ minLimit: {CEILING}, maxLimit: {CEILING}, heartbeatMs: {HEARTBEAT_MS}, aggregate: min }}
"""


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    prefix = f"tkconc-{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        from tests._support.env import REAL_REDIS, REDIS_URL

        if REAL_REDIS is None:
            pytest.skip(f"the fleet needs a real Redis at {REDIS_URL}")
        args = ["--redis", REDIS_URL, "--redis-prefix", prefix]
    else:
        url = request.getfixturevalue("pg_url")
        args = ["--postgres-url", url, "--postgres-table", request.getfixturevalue("pg_table"),
                "--postgres-prefix", prefix]  # fmt: skip
    f = Fleet(tmp_path, [*args, "--drain-grace", "0"], dict(os.environ), config=CONFIG)
    yield f
    f.stop()


def _greedy(clients: list[tk.ServiceBackend], held: list[tk.Admission], until: int, budget_s: float) -> float:
    """Admit on every client until ``until`` slots are held (or the budget runs out); seconds taken."""
    t0 = time.monotonic()
    while len(held) < until and time.monotonic() - t0 < budget_s:
        for c in clients:
            adm = c.admit("fleet", "k")
            if adm.allowed:
                held.append(adm)
        if len(held) < until:
            time.sleep(0.01)
    return time.monotonic() - t0


def test_one_ceiling_across_the_fleet(fleet: Fleet) -> None:
    targets = [f"127.0.0.1:{p}" for p in fleet.ports]
    time.sleep(4 * HEARTBEAT_MS / 1000)  # every node has joined and the shares have settled
    lock = threading.Lock()
    state = {"now": 0, "max": 0, "admitted": 0, "denied": 0}
    stop = time.monotonic() + 2.0
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        rnd = random.Random(i)
        try:
            with tk.ServiceBackend(targets[i % len(targets)], timeout=10) as c:
                while time.monotonic() < stop:
                    adm = c.admit("fleet", f"w{i}")
                    if not adm.allowed:
                        with lock:
                            state["denied"] += 1
                        time.sleep(0.005)
                        continue
                    with lock:
                        state["now"] += 1
                        state["admitted"] += 1
                        state["max"] = max(state["max"], state["now"])
                    time.sleep(rnd.uniform(0.005, 0.03))
                    with lock:
                        state["now"] -= 1
                    adm.release()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    print(f"\nfleet of 3, ceiling {CEILING}, {WORKERS} workers: {state}")
    assert state["max"] <= CEILING
    assert state["admitted"] > CEILING and state["denied"] > 0

    clients = [tk.ServiceBackend(t, timeout=10) for t in targets]
    try:
        held: list[tk.Admission] = []
        _greedy(clients, held, CEILING, 5)
        assert len(held) == CEILING  # 4 per server
        assert not any(c.admit("fleet", "k").allowed for c in clients)
        for adm in held:
            adm.release()
        held.clear()
        # kill -9 one server: its share (4) comes back to the others once its coordinator lease lapses
        # (2 x heartbeat) and their next beats evict it
        survivors = clients[:2]
        _greedy(survivors, held, CEILING - 4, 5)
        assert len(held) == CEILING - 4
        fleet.procs[2].send_signal(signal.SIGKILL)
        fleet.procs[2].wait(10)
        reclaim = _greedy(survivors, held, CEILING, 10)
        print(f"share of a kill -9'd server usable by the others after {reclaim * 1000:.0f} ms")
        assert len(held) == CEILING
        assert not any(c.admit("fleet", "k").allowed for c in survivors)
        assert reclaim <= (2 * HEARTBEAT_MS + 2 * HEARTBEAT_MS) / 1000 + 1.0
        for adm in held:
            adm.release()
    finally:
        for c in clients:
            c.close()
