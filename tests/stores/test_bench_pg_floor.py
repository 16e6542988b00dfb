"""The Postgres benchmark's floor (``scripts/bench_stores.py``) decides as our store does: the same
statements, the gcra transform's state in the store's own format, the same Decisions."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import throttlekit as tk
from tests._support.services import Proxy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


def test_the_floor_writes_the_state_our_store_reads_and_decides_alike(pg_url: str, pg_table: str) -> None:
    import psycopg
    from bench_stores import STRATEGY, _pg_floor_decide

    from throttlekit.stores import _pgconn as pgc
    from throttlekit.stores.postgres import PostgresStore

    store = PostgresStore(pg_url, table=pg_table, sweep_interval_ms=0)
    conn = psycopg.connect(pg_url, autocommit=True)
    link = pgc.connect(pg_url, {})
    try:
        ours = tk.Limiter(STRATEGY, store=store)
        ours.check("warm")  # the table exists
        floor = _pg_floor_decide(pg_table)
        before = time.time() * 1000
        first, mine = floor(link, "floor-key"), ours.check("ours-key")  # fresh keys: the same Decision
        assert isinstance(first, tk.Decision)
        assert (first.allowed, first.limit, first.remaining) == (mine.allowed, mine.limit, mine.remaining)
        assert first.remaining == STRATEGY.limit - 1
        for _ in range(4):
            assert floor(link, "floor-key").allowed
        # the row holds the store's own format (the TAT as a plain number, a deadline after it) ...
        state, expires_at = conn.execute(
            f'SELECT state, expires_at FROM "{pg_table}" WHERE key = %s', ["floor-key"]
        ).fetchone()
        assert before <= float(state) <= expires_at
        # ... which our limiter reads and continues from
        assert ours.check("floor-key").allowed
    finally:
        conn.close()
        link.close()
        store.close()


@pytest.mark.parametrize("which", ["ceiling", "floor", "link"])
def test_a_frozen_postgres_stops_the_raw_ceiling_and_the_floor_instead_of_hanging(
    pg_url: str, pg_table: str, which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their waits are bounded as the store's are (``WAIT_S``, here shortened): a server that stops
    answering mid-decision raises psycopg's timeout error within that bound."""
    import bench_stores
    import psycopg
    from bench_stores import _pg_ceiling_decide, _pg_floor_decide, _pg_link_ceiling_decide

    from throttlekit.stores import _pgconn as pgc
    from throttlekit.stores.postgres import PostgresStore

    PostgresStore(pg_url, table=pg_table, sweep_interval_ms=0).close()  # the table exists
    monkeypatch.setattr(bench_stores, "WAIT_S", 0.5)
    proxy = Proxy(5432, match=b"frozen-key", then="freeze")
    try:
        url = pg_url.replace(":5432/", f":{proxy.port}/")
        if which == "ceiling":
            conn: Any = psycopg.connect(url, autocommit=True, connect_timeout=2)
            decide = _pg_ceiling_decide("simple", pg_table)
        else:  # the floor and the link ceiling send on the store's own transport
            conn = pgc.connect(url, {"connect_timeout": 2})
            decide = _pg_floor_decide(pg_table) if which == "floor" else _pg_link_ceiling_decide(pg_table)
        decide(conn, "live-key")  # the proxy forwards everything else
        box: dict[str, BaseException] = {}

        def frozen() -> None:
            try:
                decide(conn, "frozen-key")
            except BaseException as exc:
                box["exc"] = exc

        worker = threading.Thread(target=frozen, daemon=True)  # a regression hangs the thread, not the run
        worker.start()
        worker.join(3)
        assert not worker.is_alive(), "the raw decision hangs on a frozen Postgres"
        assert isinstance(box.get("exc"), (psycopg.OperationalError, TimeoutError)), box
        conn.close()
    finally:
        proxy.stop()


@pytest.mark.parametrize("which", ["ceiling", "psycopg"])
def test_the_asyncio_ceiling_and_reference_write_a_row_and_give_up_on_a_frozen_postgres(
    pg_url: str, pg_table: str, which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The asyncio ceiling (raw libpq on an ``AsyncLink``) and the psycopg reference send the statements
    (a row appears) and wait at most ``WAIT_S`` on a server that stops answering mid-decision."""
    import asyncio

    import bench_stores
    import psycopg
    from bench_stores import _pg_async_ceiling_decide, _pg_psycopg_async_decide

    from throttlekit.stores import _pgconn as pgc
    from throttlekit.stores.postgres import PostgresStore

    PostgresStore(pg_url, table=pg_table, sweep_interval_ms=0).close()  # the table exists
    monkeypatch.setattr(bench_stores, "WAIT_S", 0.5)
    proxy = Proxy(5432, match=b"frozen-key", then="freeze")
    url = pg_url.replace(":5432/", f":{proxy.port}/")

    async def main() -> None:
        if which == "ceiling":
            conn: object = await pgc.aconnect(url, {"connect_timeout": 2}, 2.0)
            decide = _pg_async_ceiling_decide(pg_table)
        else:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=2)
            decide = _pg_psycopg_async_decide(pg_table)
        key = f"live-{which}"
        try:
            await decide(conn, key)
            with psycopg.connect(pg_url, autocommit=True) as c:
                row = c.execute(f'SELECT count(*) FROM "{pg_table}" WHERE key = %s', [key]).fetchone()
                assert row == (1,)
            t0 = time.monotonic()
            with pytest.raises((TimeoutError, psycopg.OperationalError)):
                await asyncio.wait_for(decide(conn, "frozen-key"), 3)  # the outer bound only fails the test
            assert time.monotonic() - t0 < 1.5
        finally:  # the link removes its reader first; psycopg's connection just closes
            (conn.finish if which == "ceiling" else conn.pgconn.finish)()  # type: ignore[attr-defined]

    try:
        asyncio.run(main())
    finally:
        proxy.stop()


def test_the_raw_ceiling_sends_the_stores_own_statements() -> None:
    """'The same statements': the benchmark's hand-built messages equal the store's, byte for byte."""
    from bench_stores import _pg_literal, _pg_statements

    from throttlekit.stores._pgsql import Statements, literal

    sql = Statements("tk_some_table")
    read, write = _pg_statements("tk_some_table")
    for key in ("k", "it's", "100%", "clé"):
        k = _pg_literal(key)
        assert k == literal(key)
        assert read % (k, k) == sql.begin_read1(k)
        assert write % (k, b"1796053936847.001", 1796053936848) == sql.write1(
            k, ("1796053936847.001", 1796053936848)
        )
