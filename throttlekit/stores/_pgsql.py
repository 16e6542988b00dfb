"""The Postgres store's I/O-free core: the statements (as simple-query text) and the decoding of replies.

Both halves of :class:`~throttlekit.stores.postgres.PostgresStore` (sync and asyncio) send exactly these
bytes and read the replies with exactly these functions; only the waiting differs (see
:mod:`throttlekit.stores._pgconn`). A decision that writes is two round trips, each one simple-query
message (several statements, one network exchange, no per-statement protocol overhead):

1. :meth:`Statements.begin_read`: ``BEGIN; SELECT pg_advisory_xact_lock(...) (one per key, in one global
   order); SELECT key, state, expires_at ...``. In READ COMMITTED every statement takes its own snapshot,
   so the read sees everything committed before the lock was granted.
2. :meth:`Statements.write`: the upserts / deletes of what changed, then ``COMMIT`` (or ``COMMIT`` alone).

A read-only transform is one round trip (:meth:`Statements.read`, autocommit, no lock). Values are
inlined as SQL literals (:func:`literal`), so the connection must run with
``standard_conforming_strings=on`` and ``client_encoding=UTF8`` (the transport sets both).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .._errors import ConfigError, StoreError, quote
from ._snapshot import NEVER, Change, Record

__all__ = ["IDENT", "Statements", "literal", "records", "results_ok"]

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
#: Rows deleted per sweep statement.
SWEEP_BATCH = 10_000


def literal(text: str) -> bytes:
    """``text`` as a standard-conforming SQL string literal. Postgres text cannot hold NUL."""
    if "\x00" in text:
        raise StoreError(f"postgres: a key or state cannot contain NUL (0x00): {text[:40]!r}")
    return b"'" + text.replace("'", "''").encode() + b"'"


def _ident(name: str) -> bytes:
    return b".".join(b'"' + part.encode() + b'"' for part in name.split("."))


class Statements:
    """The statements for one table, built from its validated name."""

    def __init__(self, table: str) -> None:
        if not isinstance(table, str) or not IDENT.match(table):
            raise ConfigError(
                f"postgres table must match ^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)?$, got {quote(table)}"
            )
        self.table = table
        self.schema, _, self.name = table.rpartition(".")
        t = _ident(table)
        idx = _ident(f"{self.name}_expires_at_idx")
        self._select = b"SELECT key, state, expires_at FROM " + t + b" WHERE key "
        self._lock1 = b"BEGIN; SELECT pg_advisory_xact_lock(hashtextextended("
        self._lock1_select = b", 0)); " + self._select + b"= "
        self._upsert = b"INSERT INTO " + t + b" (key, state, expires_at) VALUES ("
        self._conflict = (
            b") ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, expires_at = EXCLUDED.expires_at"
        )
        self._conflict_commit = self._conflict + b"; COMMIT"
        self._delete = b"DELETE FROM " + t + b" WHERE key = "
        self._sweep = (
            b"DELETE FROM " + t + b" WHERE key IN (SELECT key FROM " + t + b" WHERE expires_at < %d LIMIT "
            + str(SWEEP_BATCH).encode() + b")"
        )  # fmt: skip
        self.create = (
            b"BEGIN; SELECT pg_advisory_xact_lock(hashtextextended(" + literal(f"throttlekit:ddl:{table}")
            + b", 0)); CREATE TABLE IF NOT EXISTS " + t
            + b" (key TEXT PRIMARY KEY, state TEXT NOT NULL, expires_at BIGINT NOT NULL); CREATE INDEX IF NOT EXISTS "
            + idx + b" ON " + t + b" (expires_at); COMMIT"
        )  # fmt: skip
        self.drop = b"DROP TABLE IF EXISTS " + t
        #: one row: (table exists, its missing privileges or '', its columns as "name type" text)
        self.inspect = (
            b"SELECT to_regclass(" + literal(table) + b") IS NOT NULL, "
            b"CASE WHEN to_regclass(" + literal(table) + b") IS NULL THEN '' ELSE concat_ws(', ', "
            + b", ".join(
                b"CASE WHEN has_table_privilege(" + literal(table) + b", '" + p + b"') THEN NULL ELSE '" + p + b"' END"
                for p in (b"SELECT", b"INSERT", b"UPDATE", b"DELETE")
            )
            + b") END, (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' "
            b"ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = to_regclass(" + literal(table)
            + b") AND a.attnum > 0 AND NOT a.attisdropped)"
        )  # fmt: skip
        self.schema_exists = (
            b"SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = "
            + (literal(self.schema) if self.schema else b"current_schema()")
            + b")"
        )

    def _where(self, keys: Sequence[str]) -> bytes:
        if len(keys) == 1:
            return b"= " + literal(keys[0])
        return b"IN (" + b", ".join(literal(k) for k in keys) + b")"

    def read(self, keys: Sequence[str]) -> bytes:
        """The lock-free read of a read-only transform (autocommit)."""
        return self._select + self._where(keys)

    def begin_read(self, keys: Sequence[str]) -> bytes:
        """Open the transaction, take every key's advisory lock (sorted: no deadlock between multi-key
        transforms), then read; the transaction stays open until :meth:`write`."""
        if len(keys) == 1:
            k = literal(keys[0])
            return self._lock1 + k + self._lock1_select + k
        locks = b"".join(
            b"SELECT pg_advisory_xact_lock(hashtextextended(" + literal(k) + b", 0)); "
            for k in sorted(set(keys))
        )
        return b"BEGIN; " + locks + self._select + self._where(keys)

    def write(self, changes: Sequence[Change]) -> bytes:
        """The changes, then ``COMMIT`` (just ``COMMIT`` when nothing changed: it releases the locks)."""
        if len(changes) == 1:  # the common case: one upsert
            key, state, expires_at, _ = changes[0]
            if state is not None:
                expires = NEVER if expires_at is None else int(expires_at)
                return (
                    self._upsert + literal(key) + b", " + literal(state) + b", " + str(expires).encode()
                    + self._conflict_commit
                )  # fmt: skip
        parts = []
        for c in changes:
            if c.state is None:
                parts.append(self._delete + literal(c.key))
            else:
                expires = NEVER if c.expires_at_ms is None else int(c.expires_at_ms)
                parts.append(
                    self._upsert + literal(c.key) + b", " + literal(c.state) + b", " + str(expires).encode()
                    + self._conflict
                )  # fmt: skip
        parts.append(b"COMMIT")
        return b"; ".join(parts)

    def delete(self, key: str) -> bytes:
        return self._delete + literal(key)

    def sweep(self, now_ms: int) -> bytes:
        return self._sweep % int(now_ms)


#: libpq's ``PGRES_FATAL_ERROR`` (``psycopg.pq.ExecStatus.FATAL_ERROR``).
_FATAL_ERROR = 7


def results_ok(results: Sequence[Any]) -> Any:
    """The last result of a simple-query exchange; raises the server's error (a psycopg ``Error``
    subclass by SQLSTATE) when a statement failed. The server skips every statement after a failed one
    (the whole message is one implicit transaction or aborts the open one), so a failure is always the
    last result: only that one is checked."""
    if not results:
        raise StoreError("postgres: the server returned no result")
    res = results[-1]
    if res.status == _FATAL_ERROR:
        from psycopg import errors

        raise errors.error_from_result(res, encoding="utf-8")
    return res


def records(keys: Sequence[str], result: Any) -> list[Record | None]:
    """The rows of a read as records in the order of ``keys`` (expired ones included)."""
    n = result.ntuples
    if n == 0:
        return [None] * len(keys)
    get = result.get_value
    if len(keys) == 1:  # the common case: one key, at most one row (the key is the primary key)
        expires = int(get(0, 2))
        return [Record(get(0, 1).decode(), None if expires >= NEVER else expires)]
    by_key: dict[str, Record] = {}
    for i in range(n):
        expires = int(get(i, 2))
        by_key[get(i, 0).decode()] = Record(get(i, 1).decode(), None if expires >= NEVER else expires)
    return [by_key.get(k) for k in keys]


def row(result: Any) -> list[bytes | None]:
    """The first row of a result (for the startup check's inspections)."""
    return [result.get_value(0, c) for c in range(result.nfields)]
