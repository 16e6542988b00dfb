"""The Postgres benchmark's floor (``scripts/bench_stores.py``) decides as our store does: the same
statements, the gcra transform's state in the store's own format, the same Decisions."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import throttlekit as tk

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


def test_the_floor_writes_the_state_our_store_reads_and_decides_alike(pg_url: str, pg_table: str) -> None:
    import psycopg
    from bench_stores import STRATEGY, _pg_floor_decide

    from throttlekit.stores.postgres import PostgresStore

    store = PostgresStore(pg_url, table=pg_table, sweep_interval_ms=0)
    conn = psycopg.connect(pg_url, autocommit=True)
    try:
        ours = tk.Limiter(STRATEGY, store=store)
        ours.check("warm")  # the table exists
        floor = _pg_floor_decide(pg_table)
        before = time.time() * 1000
        first, mine = floor(conn, "floor-key"), ours.check("ours-key")  # fresh keys: the same Decision
        assert isinstance(first, tk.Decision)
        assert (first.allowed, first.limit, first.remaining) == (mine.allowed, mine.limit, mine.remaining)
        assert first.remaining == STRATEGY.limit - 1
        for _ in range(4):
            assert floor(conn, "floor-key").allowed
        # the row holds the store's own format (the TAT as a plain number, a deadline after it) ...
        state, expires_at = conn.execute(
            f'SELECT state, expires_at FROM "{pg_table}" WHERE key = %s', ["floor-key"]
        ).fetchone()
        assert before <= float(state) <= expires_at
        # ... which our limiter reads and continues from
        assert ours.check("floor-key").allowed
    finally:
        conn.close()
        store.close()
