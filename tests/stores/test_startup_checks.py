"""The startup check (``aping``) of the snapshot stores, for real: a local PostgreSQL (our own roles,
schemas and tables, unique names, dropped afterwards) and moto. Unreachable is ``StoreError`` (bounded by
the connect timeout); a store that answers but is misconfigured is ``ConfigError`` saying exactly what is
wrong, and never printing a password."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import throttlekit as tk
from tests._support.services import AWS_ENV, Moto, free_port

psycopg = pytest.importorskip("psycopg", reason="pip install 'throttlekit-server[postgres]'")


def _ping(store: Any) -> None:
    try:
        asyncio.run(store.aping())
    finally:
        store.close()


# -- Postgres ---------------------------------------------------------------------------------------


def _pg(url: str, **kw: Any) -> Any:
    from throttlekit.stores.postgres import PostgresStore

    kw.setdefault("sweep_interval_ms", 0)
    return PostgresStore(url, **kw)


def _with(url: str, **parts: str) -> str:
    """``url`` with another user / password / port / database."""
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(url)
    user = parts.get("user", u.username or "")
    auth = user + (f":{parts['password']}" if "password" in parts else "")
    netloc = f"{auth}@{u.hostname}:{parts.get('port', u.port or 5432)}"
    return urlunsplit((u.scheme, netloc, "/" + parts.get("db", u.path.lstrip("/")), u.query, ""))


@pytest.fixture
def scratch(pg_url: str) -> Iterator[dict[str, str]]:
    """A role without CREATE anywhere, a schema it may use but not create in, and names to clean up."""
    tag = uuid.uuid4().hex[:8]
    names = {"role": f"tk_role_{tag}", "schema": f"tk_schema_{tag}", "tag": tag}
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f"CREATE ROLE {names['role']} LOGIN")
        c.execute(f"CREATE SCHEMA {names['schema']}")
        c.execute(f"GRANT USAGE ON SCHEMA {names['schema']} TO {names['role']}")
    yield names
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {names['schema']} CASCADE")
        c.execute(f"DROP OWNED BY {names['role']}")
        c.execute(f"DROP ROLE IF EXISTS {names['role']}")


@pytest.mark.postgres
def test_pg_usable_store_passes_and_creates_its_table(pg_url: str, scratch: dict[str, str]) -> None:
    table = f"{scratch['schema']}.t_{scratch['tag']}"
    _ping(_pg(pg_url, table=table))
    with psycopg.connect(pg_url) as c:
        assert c.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone() == (True,)
    _ping(_pg(pg_url, table=table, auto_create=False))  # now it exists


@pytest.mark.postgres
def test_pg_wrong_port_is_a_prompt_store_error(pg_url: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(
        tk.StoreError, match=r"postgres: cannot reach postgresql://.*127\.0\.0\.1:\d+/"
    ) as info:
        _ping(_pg(_with(pg_url, port=str(free_port())), connect_timeout_s=30))
    assert not isinstance(info.value, tk.ConfigError)
    assert time.monotonic() - t0 < 10  # refused at once, far inside the 30 s timeout (robust under load)


@pytest.mark.postgres
def test_pg_wrong_host_is_a_store_error() -> None:
    with pytest.raises(tk.StoreError, match="postgres: cannot reach"):
        _ping(_pg("postgresql://postgres@no-such-host.invalid:5432/test", connect_timeout_s=1))


@pytest.mark.postgres
def test_pg_wrong_database_names_it_and_never_the_password(pg_url: str) -> None:
    db = f"nope_{uuid.uuid4().hex[:6]}"
    url = _with(pg_url, password="s3cr3t-pw", db=db)
    with pytest.raises(tk.ConfigError) as info:
        _ping(_pg(url))
    msg = str(info.value)
    assert f'database "{db}" does not exist' in msg
    assert f"127.0.0.1:5432/{db})" in msg
    assert "s3cr3t-pw" not in msg and "s3cr3t-pw" not in repr(info.value.__cause__)


@pytest.mark.postgres
def test_pg_unknown_role_names_it(pg_url: str) -> None:
    role = f"tk_nobody_{uuid.uuid4().hex[:6]}"
    with pytest.raises(tk.ConfigError, match=f'role "{role}" does not exist'):
        _ping(_pg(_with(pg_url, user=role)))


@pytest.mark.postgres
def test_pg_missing_schema_names_it(pg_url: str) -> None:
    schema = f"tk_noschema_{uuid.uuid4().hex[:6]}"
    with pytest.raises(tk.ConfigError, match=f'schema "{schema}" does not exist'):
        _ping(_pg(pg_url, table=f"{schema}.t"))


@pytest.mark.postgres
def test_pg_missing_table_without_permission_to_create_it(pg_url: str, scratch: dict[str, str]) -> None:
    url = _with(pg_url, user=scratch["role"])
    with pytest.raises(tk.ConfigError, match=f"permission denied for schema {scratch['schema']}"):
        _ping(_pg(url, table=f"{scratch['schema']}.t"))
    with pytest.raises(tk.ConfigError, match=rf'table "{scratch["schema"]}\.t" does not exist'):
        _ping(_pg(url, table=f"{scratch['schema']}.t", auto_create=False))


@pytest.mark.postgres
def test_pg_table_without_privileges_or_with_other_columns(pg_url: str, scratch: dict[str, str]) -> None:
    s = scratch["schema"]
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(
            f"CREATE TABLE {s}.ok (key TEXT PRIMARY KEY, state TEXT NOT NULL, expires_at BIGINT NOT NULL)"
        )
        c.execute(f"GRANT SELECT ON {s}.ok TO {scratch['role']}")
        c.execute(f"CREATE TABLE {s}.odd (key TEXT PRIMARY KEY, value JSONB)")
    url = _with(pg_url, user=scratch["role"])
    with pytest.raises(tk.ConfigError, match=f'the role lacks INSERT, UPDATE, DELETE on table "{s}.ok"'):
        _ping(_pg(url, table=f"{s}.ok"))
    with pytest.raises(tk.ConfigError, match=rf'table "{s}\.odd" has columns \(key text, value jsonb\)'):
        _ping(_pg(pg_url, table=f"{s}.odd"))


@pytest.mark.postgres
def test_pg_from_url_rejects_unknown_options_and_lists_the_allowed() -> None:
    from throttlekit.stores.postgres import from_url

    with pytest.raises(
        tk.ConfigError, match=r"unknown parameter 'tabel'; allowed: lock_timeout_ms, pool_size"
    ) as info:
        from_url("postgresql://u:pw@127.0.0.1/test?tabel=x")
    assert "sslmode" in str(info.value) and ":pw@" not in str(info.value)
    s = from_url("postgresql://postgres@127.0.0.1/test?synchronous_commit=off&application_name=tk")
    s.close()
    with pytest.raises(tk.ConfigError, match="synchronous_commit must be one of"):
        from_url("postgresql://postgres@127.0.0.1/test?synchronous_commit=sometimes")


# -- DynamoDB ---------------------------------------------------------------------------------------


def _ddb(table: str, endpoint: str, **kw: Any) -> Any:
    from throttlekit.stores.dynamodb import DynamoDBStore

    return DynamoDBStore(table, region="us-east-1", endpoint=endpoint, **kw)


@pytest.mark.dynamodb
def test_ddb_missing_table_names_table_and_region(moto: Moto) -> None:
    name = f"tk-missing-{uuid.uuid4().hex[:6]}"
    with pytest.raises(
        tk.ConfigError, match=rf"dynamodb: table '{name}' in region 'us-east-1' at .* does not exist"
    ):
        _ping(_ddb(name, moto.endpoint))
    _ping(_ddb(name, moto.endpoint, create=True))  # create=1: made, then usable
    _ping(_ddb(name, moto.endpoint))


@pytest.mark.dynamodb
def test_ddb_unreachable_endpoint_is_a_store_error() -> None:
    with pytest.raises(tk.StoreError, match="dynamodb: cannot reach") as info:
        _ping(_ddb("t", f"http://127.0.0.1:{free_port()}", connect_timeout_s=0.5, read_timeout_s=0.5))
    assert not isinstance(info.value, tk.ConfigError)


@pytest.mark.dynamodb
def test_ddb_wrong_key_schema(moto: Moto) -> None:
    from throttlekit.stores.dynamodb import make_client

    name = f"tk-schema-{uuid.uuid4().hex[:6]}"
    client = make_client("us-east-1", moto.endpoint)
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.close()
    with pytest.raises(tk.ConfigError, match=r"key schema \[\('id', 'HASH'\)\]; this store needs .* 'pk'"):
        _ping(_ddb(name, moto.endpoint))


@pytest.mark.dynamodb
@pytest.mark.slow
def test_ddb_rejected_credentials_are_a_config_error() -> None:
    pytest.importorskip("boto3")
    server = Moto(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # moto then checks access keys like IAM
    try:
        with pytest.raises(
            tk.ConfigError, match="dynamodb: credentials rejected for table 't' in region"
        ) as info:
            _ping(_ddb("t", server.endpoint))
        assert AWS_ENV["AWS_SECRET_ACCESS_KEY"] not in str(info.value)
    finally:
        server.stop()
