"""The startup check of every store (``aping``), with real misconfigurations: a store that answers but
cannot be used refuses to start (exit 1, a clear message); an unreachable one starts with a warning naming
the store and the fail mode."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests._support.env import IN_CI
from tests._support.redis_server import OwnRedis, free_port
from tests._support.server import launch

CONFIG = "limiters:\n  api: { strategy: fixedWindow, limit: 10, period: 1m }\n"


def _config(tmp_path: Path) -> str:
    path = tmp_path / "policies.yaml"
    path.write_text(CONFIG)
    return str(path)


def _refused(tmp_path: Path, *args: str) -> str:
    proc = launch("--config", _config(tmp_path), "--port", "0", "--drain-grace", "0", *args)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, (out, err)
    assert "listening" not in out
    return err


@pytest.fixture
def redis_with_password() -> OwnRedis:
    own = OwnRedis("--requirepass", "right-password", password="right-password")
    own.start()
    yield own  # type: ignore[misc]
    own.stop()


@pytest.mark.redis
def test_a_wrong_redis_password_refuses_to_start(tmp_path: Path, redis_with_password: OwnRedis) -> None:
    url = f"redis://:wrong-password@127.0.0.1:{redis_with_password.port}/0"
    err = _refused(tmp_path, "--redis", url)
    assert "the redis store answered but cannot be used" in err and "WRONGPASS" in err, err
    assert "wrong-password" not in err  # the secret itself is not echoed


@pytest.mark.redis
def test_a_missing_redis_password_refuses_to_start(tmp_path: Path, redis_with_password: OwnRedis) -> None:
    err = _refused(tmp_path, "--redis", redis_with_password.url)
    assert "the redis store answered but cannot be used" in err and "NOAUTH" in err, err


@pytest.mark.redis
def test_a_redis_database_that_does_not_exist_refuses_to_start(tmp_path: Path) -> None:
    own = OwnRedis("--databases", "4")
    own.start()
    try:
        err = _refused(tmp_path, "--redis", f"redis://127.0.0.1:{own.port}/9")
    finally:
        own.stop()
    assert "the redis store answered but cannot be used" in err and "out of range" in err, err


def test_an_unreachable_redis_starts_with_a_warning_naming_it_and_the_fail_mode(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = launch(
        "--config", _config(tmp_path), "--port", "0", "--redis", url, "--fail", "closed", "--drain-grace", "0"
    )
    try:
        assert proc.stdout is not None
        assert "listening on" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "warning: the redis store is not reachable yet" in err
    assert "decisions fail closed until it is" in err


@pytest.mark.postgres
def test_a_postgres_database_that_does_not_exist_refuses_to_start(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    url = os.environ.get("THROTTLEKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"CI=true but Postgres is unreachable at {url}: {exc}")
        pytest.skip(f"Postgres unreachable at {url}")
    base, _, _db = url.rpartition("/")
    err = _refused(tmp_path, "--postgres-url", f"{base}/throttlekit_no_such_database")
    assert "the postgres store answered but cannot be used" in err, err
    assert "throttlekit_no_such_database" in err
