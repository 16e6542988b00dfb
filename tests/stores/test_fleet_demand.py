"""distributedConcurrency ``allocation: demand-proportional`` (spec 9.4 step 4) across two real server
processes on one Redis: a busy server and an idle one. Under equal split the busy server never holds more
than half of the ceiling; under demand-proportional the idle server keeps ``inflight + 1`` (1) and the
busy one takes the rest, so it holds more than half, while the two together never hold more than the
ceiling (counted client-side, between a granted Admit and its Release). Then the idle server gets work
too and the ceiling still holds while the shares move back."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from pathlib import Path

import pytest

import throttlekit as tk
from tests._support.fleet import Fleet

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CEILING, HEARTBEAT_MS, BUSY_WORKERS, LATE_WORKERS = 12, 100, 16, 8


def _config(allocation: str) -> str:
    return f"""version: 1
limiters:
  fleet:
    distributedConcurrency: {{ minLimit: {CEILING}, maxLimit: {CEILING}, heartbeatMs: {HEARTBEAT_MS}, aggregate: min, allocation: {allocation} }}
"""


class _Held:
    """Slots held right now per server and in total, and their maxima (client-side counts)."""

    def __init__(self, servers: int) -> None:
        self.lock = threading.Lock()
        self.now = [0] * servers
        self.max = [0] * servers
        self.total_max = 0
        self.admitted = [0] * servers

    def take(self, i: int) -> None:
        with self.lock:
            self.now[i] += 1
            self.admitted[i] += 1
            self.max[i] = max(self.max[i], self.now[i])
            self.total_max = max(self.total_max, sum(self.now))

    def give(self, i: int) -> None:
        with self.lock:
            self.now[i] -= 1


def _run(targets: list[str], plan: list[int], held: _Held, seconds: float, seed: int) -> None:
    """``plan[k]`` = the server index worker k admits on; each holds a granted slot 5-30 ms."""
    stop = time.monotonic() + seconds
    errors: list[BaseException] = []

    def worker(k: int, server: int) -> None:
        rnd = random.Random(seed + k)
        try:
            with tk.ServiceBackend(targets[server], timeout=10) as c:
                while time.monotonic() < stop:
                    adm = c.admit("fleet", f"w{k}")
                    if not adm.allowed:
                        time.sleep(0.002)
                        continue
                    held.take(server)
                    time.sleep(rnd.uniform(0.005, 0.03))
                    held.give(server)
                    adm.release()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k, s)) for k, s in enumerate(plan)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


@pytest.mark.parametrize("allocation", ["equal-split", "demand-proportional"])
def test_an_idle_server_lends_its_share_to_a_busy_one(allocation: str, tmp_path: Path) -> None:
    from tests._support.env import REAL_REDIS, REDIS_URL

    if REAL_REDIS is None:
        pytest.skip(f"the fleet needs a real Redis at {REDIS_URL}")
    prefix = f"tkdemand-{uuid.uuid4().hex[:8]}"
    args = ["--redis", REDIS_URL, "--redis-prefix", prefix, "--drain-grace", "0"]
    fleet = Fleet(tmp_path, args, dict(os.environ), servers=2, config=_config(allocation))
    try:
        targets = [f"127.0.0.1:{p}" for p in fleet.ports]
        time.sleep(4 * HEARTBEAT_MS / 1000)  # both nodes have joined
        busy = _Held(2)
        _run(targets, [0] * BUSY_WORKERS, busy, 2.0, seed=1)
        # then the idle server gets work too: its demand takes its share back
        both = _Held(2)
        _run(targets, [0] * BUSY_WORKERS + [1] * LATE_WORKERS, both, 2.0, seed=2)
    finally:
        fleet.stop()
    print(
        f"\n{allocation}, ceiling {CEILING}: busy alone held at most {busy.max} (total {busy.total_max}, "
        f"admitted {busy.admitted}); both busy: at most {both.max} (total {both.total_max}, admitted {both.admitted})"
    )
    assert busy.max[1] == 0 and busy.admitted[0] > CEILING
    assert busy.total_max <= CEILING and both.total_max <= CEILING
    assert both.admitted[1] > 0  # the idle server's share came back when it had demand
    if allocation == "equal-split":
        assert busy.max[0] <= CEILING // 2
    else:
        assert busy.max[0] > CEILING // 2
