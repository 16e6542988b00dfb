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
from ._snapshot import NEVER, Change, Outcome, Record

__all__ = ["IDENT", "Statements", "literal", "record1", "records"]

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
#: Rows deleted per sweep statement.
SWEEP_BATCH = 10_000


def literal(text: str) -> bytes:
    """``text`` as a standard-conforming SQL string literal. Postgres text cannot hold NUL."""
    if "\x00" in text:
        raise StoreError(f"postgres: a key or state cannot contain NUL (0x00): {text[:40]!r}")
    return b"'%b'" % text.replace("'", "''").encode()


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
        #: :meth:`begin_read1` as a template, ``% (k, k)`` (for a caller that inlines it)
        self.begin_read1_template = (
            b"BEGIN; SELECT pg_advisory_xact_lock(hashtextextended(%b, 0)); " + self._select + b"= %b"
        )  # the key's literal twice (IDENT: a table name has no %)
        self._upsert = b"INSERT INTO " + t + b" (key, state, expires_at) VALUES ("
        self._conflict = (
            b") ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, expires_at = EXCLUDED.expires_at"
        )
        self._upsert1 = (
            self._upsert + b"%b, '%b', %d" + self._conflict + b"; COMMIT"
        )  # the key's literal, the state's quoted text, the deadline
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
            return self.begin_read1(literal(keys[0]))
        locks = b"".join(
            b"SELECT pg_advisory_xact_lock(hashtextextended(" + literal(k) + b", 0)); "
            for k in sorted(set(keys))
        )
        return b"BEGIN; " + locks + self._select + self._where(keys)

    def begin_read1(self, k: bytes) -> bytes:
        """:meth:`begin_read` of one key given as its :func:`literal`."""
        return self.begin_read1_template % (k, k)

    def write1(self, k: bytes, outcome: Outcome) -> bytes:
        """:meth:`write` for one key given as its :func:`literal`, with the executor's one-key outcome
        (:meth:`~throttlekit.stores._snapshot.SnapshotExecutor.run1`): ``True`` nothing to write
        (``COMMIT`` alone), ``None`` delete, else ``(state, expires_at_ms)`` to upsert."""
        if outcome is True:
            return b"COMMIT"
        if outcome is None:
            return self._delete + k + b"; COMMIT"
        state, expires_at = outcome  # JSON text: never a NUL (json escapes it), so only quotes to double
        return self._upsert1 % (
            k,
            state.replace("'", "''").encode(),
            NEVER if expires_at is None else expires_at,
        )

    def write(self, changes: Sequence[Change]) -> bytes:
        """The changes, then ``COMMIT`` (just ``COMMIT`` when nothing changed: it releases the locks)."""
        if len(changes) == 1:  # the common case: one upsert or delete
            key, state, expires_at, _ = changes[0]
            return self.write1(literal(key), None if state is None else (state, expires_at))
        parts = []
        for c in changes:
            if c.state is None:
                parts.append(self._delete + literal(c.key))
            else:
                expires = NEVER if c.expires_at_ms is None else c.expires_at_ms
                parts.append(
                    self._upsert + literal(c.key) + b", " + literal(c.state) + b", " + b"%d" % expires
                    + self._conflict
                )  # fmt: skip
        parts.append(b"COMMIT")
        return b"; ".join(parts)

    def delete(self, key: str) -> bytes:
        return self._delete + literal(key)

    def sweep(self, now_ms: int) -> bytes:
        return self._sweep % int(now_ms)


def record1(result: Any) -> tuple[str | None, int | None]:
    """The read of one key as ``(state, expires_at_ms)``: ``(None, None)`` when absent, ``expires_at_ms``
    None when persistent (expired records included: the executor decides liveness)."""
    if result.ntuples == 0:
        return None, None
    get = result.get_value
    expires = int(get(0, 2))
    return get(0, 1).decode(), None if expires >= NEVER else expires


def records(keys: Sequence[str], result: Any) -> list[Record | None]:
    """The rows of a read as records in the order of ``keys`` (expired ones included)."""
    n = result.ntuples
    if n == 0:
        return [None] * len(keys)
    get = result.get_value
    if len(keys) == 1:  # the common case: one key, at most one row (the key is the primary key)
        state, expires_at = record1(result)
        return [None if state is None else Record(state, expires_at)]
    by_key: dict[str, Record] = {}
    for i in range(n):
        expires = int(get(i, 2))
        by_key[get(i, 0).decode()] = Record(get(i, 1).decode(), None if expires >= NEVER else expires)
    return [by_key.get(k) for k in keys]


def row(result: Any) -> list[bytes | None]:
    """The first row of a result (for the startup check's inspections)."""
    return [result.get_value(0, c) for c in range(result.nfields)]
