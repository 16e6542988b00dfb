"""Shared fixtures: the table of stores every behavioural test runs against.

Real Redis comes from ``THROTTLEKIT_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). When it is
unreachable the ``redis`` entries fall back to fakeredis (with Lua) on a laptop, but under ``CI=true``
an unreachable server fails the run: nothing may skip or fall back silently there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import throttlekit as tk
from throttlekit._lupa import RUNTIMES

IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_URL = os.environ.get("THROTTLEKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _real_redis() -> redis.Redis | None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        return None
    return client


_REAL = _real_redis()


def redis_client() -> Any:
    """The real Redis client, or fakeredis off CI when no server is reachable."""
    if _REAL is not None:
        return _REAL
    if IN_CI:
        pytest.fail(f"CI=true but Redis is unreachable at {REDIS_URL}: start it (see .ci/run)")
    import fakeredis

    return fakeredis.FakeRedis()


def fake_client() -> Any:
    import fakeredis

    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


StoreFactory = Callable[[tk.ManualClock], Any]


def _memory(runtime: str) -> StoreFactory:
    return lambda clock: tk.MemoryStore(clock=clock, runtime=runtime)


def _redis_factory(clock: tk.ManualClock) -> Any:
    return tk.RedisStore(redis_client(), prefix=f"tkt-{uuid.uuid4().hex[:10]}")


def _fakeredis_factory(clock: tk.ManualClock) -> Any:
    return tk.RedisStore(fake_client(), prefix="tkt")


#: One table of stores. Each entry: (factory(clock) -> store, marks).
STORES: dict[str, Any] = {}
for _rt in sorted(RUNTIMES):
    STORES[f"memory-{_rt}"] = pytest.param(_memory(_rt), id=f"memory-{_rt}")
STORES["redis"] = pytest.param(_redis_factory, marks=pytest.mark.redis, id="redis")
STORES["fakeredis"] = pytest.param(_fakeredis_factory, marks=pytest.mark.fakeredis, id="fakeredis")


@pytest.fixture(params=list(STORES.values()))
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    """Every store in the table (memory on each Lua runtime, real Redis, fakeredis)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> tk.ManualClock:
    return tk.ManualClock(1_000_000)


@pytest.fixture
def redis_store() -> Iterator[tk.RedisStore]:
    """A RedisStore on the real server (fakeredis off CI when absent) with a unique prefix."""
    store = tk.RedisStore(redis_client(), prefix=f"tkt-{uuid.uuid4().hex[:10]}")
    yield store
    client = store.client
    for key in client.scan_iter(match=f"{store.prefix}:*", count=500):
        client.delete(key)
    store.close()


def build_wheel(source: Path, out: Path) -> Path:
    """Build the project's wheel from ``source`` into ``out`` (no isolation: the test venv has hatchling)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return next(out.glob("throttlekit_server-*.whl"))
