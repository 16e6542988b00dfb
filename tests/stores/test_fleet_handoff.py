"""distributedConcurrency with acknowledged handoff and eager beats, as server processes on one Redis (and
one Postgres): shares move while servers join and leave under load, and the fleet never holds more than
the ceiling (counted client-side, between a granted Admit and its Release); and a share moving from one
node to another is usable sooner than one heartbeat period with eager beats (measured against the same
fleet without them; the numbers are printed: ``pytest -s``)."""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import throttlekit as tk
from tests._support.fleet import Fleet

pytestmark = pytest.mark.slow

CEILING = 12


def _config(heartbeat_ms: int, eager: bool) -> str:
    extra = ", eagerHandoff: true, minHeartbeatMs: 20" if eager else ""
    return f"""version: 1
limiters:
  fleet:
    distributedConcurrency: {{ minLimit: {CEILING}, maxLimit: {CEILING}, heartbeatMs: {heartbeat_ms}, aggregate: min, handoff: true{extra} }}
"""


StartServer = Callable[[str], Fleet]


def _starter(request: pytest.FixtureRequest, tmp_path: Path, store: str, started: list[Fleet]) -> StartServer:
    """Start one server process (its own Fleet of 1) on the shared store."""
    prefix = f"tkho-{uuid.uuid4().hex[:8]}"
    if store == "redis":
        from tests._support.env import REAL_REDIS, REDIS_URL

        if REAL_REDIS is None:
            pytest.skip(f"the fleet needs a real Redis at {REDIS_URL}")
        args = ["--redis", REDIS_URL, "--redis-prefix", prefix]
    else:
        url = request.getfixturevalue("pg_url")
        args = ["--postgres-url", url, "--postgres-table", request.getfixturevalue("pg_table"),
                "--postgres-prefix", prefix]  # fmt: skip

    def start(config: str) -> Fleet:
        d = tmp_path / f"s{len(started)}"
        d.mkdir()
        f = Fleet(d, [*args, "--drain-grace", "0"], dict(os.environ), servers=1, config=config)
        started.append(f)
        return f

    return start


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def start_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartServer]:
    started: list[Fleet] = []
    yield _starter(request, tmp_path, request.param, started)
    for f in started:
        f.stop()


@pytest.fixture
def start_redis_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartServer]:
    started: list[Fleet] = []
    yield _starter(request, tmp_path, "redis", started)
    for f in started:
        f.stop()


class _Count:
    """Slots held across the whole fleet, counted by the clients."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.max = self.admitted = self.denied = 0

    def take(self) -> None:
        with self.lock:
            self.now += 1
            self.admitted += 1
            self.max = max(self.max, self.now)

    def give(self) -> None:
        with self.lock:
            self.now -= 1


def _worker(
    target: str, count: _Count, stop: threading.Event, errors: list[BaseException], seed: int
) -> None:
    rnd = random.Random(seed)
    try:
        with tk.ServiceBackend(target, timeout=10) as c:
            while not stop.is_set():
                adm = c.admit("fleet", f"w{seed}")
                if not adm.allowed:
                    with count.lock:
                        count.denied += 1
                    time.sleep(0.005)
                    continue
                count.take()
                time.sleep(rnd.uniform(0.005, 0.03))
                count.give()  # counted free before the Release is sent: never undercounts what is held
                adm.release()
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def test_share_moves_under_load_never_exceed_the_ceiling(start_server: StartServer) -> None:
    """Two servers under 20 workers; a third joins (shares 6/6 -> 4/4/4) with 10 more workers, then its
    workers stop and it leaves (back to 6/6), all while the others keep hammering."""
    config = _config(200, eager=True)
    a, b = start_server(config), start_server(config)
    time.sleep(0.8)
    count, errors = _Count(), []
    stop_ab, stop_c = threading.Event(), threading.Event()
    targets = [f"127.0.0.1:{f.ports[0]}" for f in (a, b)]
    threads = [
        threading.Thread(target=_worker, args=(targets[i % 2], count, stop_ab, errors, i)) for i in range(20)
    ]
    for t in threads:
        t.start()
    time.sleep(1.0)
    c = start_server(config)  # joins under load: the share moves to it
    target_c = f"127.0.0.1:{c.ports[0]}"
    c_threads = [
        threading.Thread(target=_worker, args=(target_c, count, stop_c, errors, 100 + i)) for i in range(10)
    ]
    for t in c_threads:
        t.start()
    time.sleep(2.0)
    admitted_before_leave = count.admitted
    stop_c.set()
    for t in c_threads:
        t.join(30)
    c.stop()  # leaves: its share moves back to a and b
    time.sleep(1.5)
    stop_ab.set()
    for t in threads:
        t.join(30)
    assert not errors, errors
    print(
        f"\nhandoff + eager, 3 servers joining/leaving, ceiling {CEILING}: "
        f"max held {count.max}, admitted {count.admitted}, denied {count.denied}"
    )
    assert count.max <= CEILING
    assert count.admitted > admitted_before_leave > CEILING and count.denied > 0


def _handover_ms(start_server: StartServer, config: str, heartbeat_ms: int) -> float:
    """A holds the whole ceiling; B joins (share 0: A holds 12); A's work ends (12 releases): how long until
    B holds its share of 6 (B's client retrying every 2 ms)."""
    a = start_server(config)
    time.sleep(2 * heartbeat_ms / 1000)
    with tk.ServiceBackend(f"127.0.0.1:{a.ports[0]}", timeout=10) as ca:
        held = []
        for _ in range(50):
            adm = ca.admit("fleet", "a", heartbeat=True)  # held past the 2 s lease TTL
            if adm.allowed:
                held.append(adm)
            if len(held) == CEILING:
                break
            time.sleep(0.02)
        assert len(held) == CEILING
        b = start_server(config)
        time.sleep(3 * heartbeat_ms / 1000 + random.uniform(0, heartbeat_ms / 1000))  # a random phase
        with tk.ServiceBackend(f"127.0.0.1:{b.ports[0]}", timeout=10) as cb:
            assert not cb.admit("fleet", "b").allowed  # a holds everything
            t0 = time.monotonic()
            for adm in held:
                adm.release()
            got = []
            while len(got) < CEILING // 2 and time.monotonic() - t0 < 10:
                adm = cb.admit("fleet", "b")
                if adm.allowed:
                    got.append(adm)
                else:
                    time.sleep(0.002)
            took = (time.monotonic() - t0) * 1000
            assert len(got) == CEILING // 2
            for adm in got:
                adm.release()
    a.stop()
    b.stop()
    return took


@pytest.mark.redis
def test_eager_beats_hand_a_share_over_sooner_than_a_heartbeat(start_redis_server: StartServer) -> None:
    beat = 500
    plain = [_handover_ms(start_redis_server, _config(beat, eager=False), beat) for _ in range(3)]
    eager = [_handover_ms(start_redis_server, _config(beat, eager=True), beat) for _ in range(3)]
    print(
        f"\nshare handover A -> B, heartbeatMs {beat}: without eager beats "
        f"{[round(x) for x in plain]} ms (median {statistics.median(plain):.0f}), with eager beats "
        f"(minHeartbeatMs 20) {[round(x) for x in eager]} ms (median {statistics.median(eager):.0f})"
    )
    assert statistics.median(eager) < beat
    assert statistics.median(eager) < statistics.median(plain)
