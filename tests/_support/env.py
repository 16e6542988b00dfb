"""The test environment: which Redis to use (real, or fakeredis off CI), the CI flag, and a wheel builder.

Real Redis comes from ``THROTTLEKIT_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). When it is
unreachable the ``redis`` entries fall back to fakeredis (with Lua) on a laptop, but under ``CI=true``
an unreachable server fails the run: nothing may skip or fall back silently there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import redis

IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_URL = os.environ.get("THROTTLEKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]


def _real_redis() -> redis.Redis | None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        return None
    return client


#: the real Redis client, or None when no server answers at REDIS_URL
REAL_REDIS = _real_redis()


def redis_client() -> Any:
    """The real Redis client, or fakeredis off CI when no server is reachable."""
    if REAL_REDIS is not None:
        return REAL_REDIS
    if IN_CI:
        pytest.fail(f"CI=true but Redis is unreachable at {REDIS_URL}: start it (see .ci/run)")
    import fakeredis

    return fakeredis.FakeRedis()


def real_redis() -> Any:
    """The real Redis client, for a test that cannot run on fakeredis: it fails under CI when no server
    is reachable, and is skipped, saying why, off CI."""
    if REAL_REDIS is not None:
        return REAL_REDIS
    if IN_CI:
        pytest.fail(f"CI=true but Redis is unreachable at {REDIS_URL}: start it (see .ci/run)")
    pytest.skip(f"needs a real Redis at {REDIS_URL}")


def fake_client() -> Any:
    import fakeredis

    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


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
