"""Fixtures for the shared-store tests: Postgres (skip off CI when unreachable, fail under CI=true),
moto's DynamoDB server on a loopback ephemeral port, and unique tables per run, dropped at the end."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import throttlekit as tk
from tests._support.env import redis_client
from tests._support.services import AWS_ENV, Moto

for _k, _v in AWS_ENV.items():
    os.environ.setdefault(_k, _v)

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("THROTTLEKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

StoreMaker = Callable[..., Any]


def _pg_reachable(url: str) -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'throttlekit-server[postgres]')"
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except Exception as exc:
        return f"Postgres unreachable at {url}: {exc}".strip()
    return None


@pytest.fixture(scope="session")
def pg_url() -> str:
    why = _pg_reachable(PG_URL)
    if why is not None:
        if IN_CI:
            pytest.fail(f"CI=true but {why}")
        pytest.skip(f"{why} (set THROTTLEKIT_TEST_POSTGRES_URL; under CI=true this fails)")
    return PG_URL


@pytest.fixture(scope="session")
def pg_table(pg_url: str) -> Iterator[str]:
    """A table unique to this run, dropped at the end."""
    from throttlekit.stores.postgres import PostgresStore

    name = f"tkt_{uuid.uuid4().hex[:10]}"
    yield name
    s = PostgresStore(pg_url, table=name, sweep_interval_ms=0)
    s.drop_table()
    s.close()


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    pytest.importorskip("boto3", reason="boto3 is not installed (pip install 'throttlekit-server[dynamodb]')")
    server = Moto()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ddb_table(moto: Moto) -> str:
    from throttlekit.stores.dynamodb import create_table, make_client

    name = f"tkt-{uuid.uuid4().hex[:10]}"
    client = make_client(
        "us-east-1", moto.endpoint, connect_timeout_s=10, read_timeout_s=30
    )  # setup, not a test
    create_table(client, name)
    client.close()
    return name  # moto's state dies with the server


def _prefix() -> str:
    return f"tkt-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def memory_store() -> StoreMaker:
    return lambda clock=None, **kw: tk.MemoryStore(clock=clock, **kw)


@pytest.fixture
def redis_maker() -> StoreMaker:
    return lambda clock=None, **kw: tk.RedisStore(redis_client(), prefix=_prefix())


@pytest.fixture
def pg_store(pg_url: str, pg_table: str) -> StoreMaker:
    from throttlekit.stores.postgres import PostgresStore

    def make(clock: Any = None, **kw: Any) -> PostgresStore:
        kw.setdefault("sweep_interval_ms", 0)
        return PostgresStore(pg_url, table=pg_table, clock=clock, prefix=_prefix(), **kw)

    return make


@pytest.fixture
def ddb_store(moto: Moto, ddb_table: str) -> StoreMaker:
    from throttlekit.stores.dynamodb import DynamoDBStore

    def make(clock: Any = None, **kw: Any) -> DynamoDBStore:
        kw.setdefault("max_retries", 200)
        return DynamoDBStore(
            ddb_table, region="us-east-1", endpoint=moto.endpoint, clock=clock, prefix=_prefix(), **kw
        )

    return make
