"""PostgreSQL store: the Lua transforms under lupa over a row per key, serialized by an advisory lock.

Layers (each its own module): the statements and the decoding of replies, I/O-free and shared by the
sync and asyncio halves (:mod:`throttlekit.stores._pgsql`); connecting, one simple-query exchange and
error mapping (:mod:`throttlekit.stores._pgconn`); the pools (:mod:`throttlekit.stores._pgpool`); the
decision itself (:mod:`throttlekit.stores._snapshot`). This module wires them: the store, its sweeper and
its asyncio half.

One decision that may write is one transaction in **two round trips**, each a single simple-query
message: ``BEGIN; SELECT pg_advisory_xact_lock(...); SELECT key, state, expires_at ...`` then the
upsert/delete of what changed and ``COMMIT`` (``COMMIT`` alone when nothing changed). Read-only
transforms (peek, forecast) are one round trip without a lock. Lock waits never retry: the lock
serializes writers, so the executor's CAS retry never triggers.

Table (created on first use when ``auto_create``, DDL serialized by an advisory lock)::

    CREATE TABLE <table> (key TEXT PRIMARY KEY, state TEXT NOT NULL, expires_at BIGINT NOT NULL);
    CREATE INDEX <table>_expires_at_idx ON <table> (expires_at);

``state`` is JSON in the upstream shapes (see :mod:`throttlekit.stores._codecs`); ``expires_at`` is the
absolute deadline in epoch ms (``9223372036854775807`` = never). A row is live while ``now <=
expires_at``; expired rows are ignored on read and deleted by a periodic sweep (``sweep_interval_ms``,
default 60 s, at most 10,000 rows per pass; a sleeping daemon thread for the sync API, an asyncio task
for the async API). Timeouts (all documented in ``docs/stores.md``): ``connect_timeout_s`` (libpq
``connect_timeout``), ``statement_timeout_ms`` and ``lock_timeout_ms`` (server side), TCP keepalives and
``tcp_user_timeout`` (dead peers), ``acquire_timeout_s`` (pool exhausted) and ``op_timeout_s`` (a
client-side bound on every network wait). Every failure raises ``StoreError``.

``synchronous_commit="off"`` (or ``?synchronous_commit=off`` in the URL) lets a commit return before its
WAL reaches disk: 1.4-1.7x the decisions per second measured here, at the price of losing the last
few hundred milliseconds of counts if the Postgres server crashes (never corrupting them). Not the
default. :meth:`PostgresStore.aping` is the startup check.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._clock import SERVER_TIME, Clock
from .._errors import ConfigError, StoreError
from .._loader import Transform
from . import _pgconn as pgc
from ._pgpool import AsyncPool, Pool
from ._pgsql import SWEEP_BATCH, Statements, literal, record1, records, row
from ._snapshot import Change, Record, SnapshotStore
from .base import AsyncBoundCall, BoundCall, Last, Reply

__all__ = ["AsyncPostgresStore", "PostgresStore", "from_url"]

INSTALL_HINT = pgc.INSTALL_HINT
_SYNC_COMMIT = ("on", "off", "local", "remote_write", "remote_apply")


class _Txn:
    """A sync decision attempt: the records read and, for a write, the connection holding the locks."""

    __slots__ = ("_conn", "_pool", "_sql", "_store", "records")

    def __init__(
        self,
        store: PostgresStore,
        records: list[Record | None],
        conn: pgc.Link | None,
        sql: Statements,
        pool: Pool[pgc.Link],
    ) -> None:
        self.records = records
        self._store, self._conn, self._sql, self._pool = store, conn, sql, pool

    def commit(self, changes: Sequence[Change]) -> bool:
        conn, self._conn = self._conn, None
        if conn is None:
            return True
        self._store._commit(conn, self._sql.write(changes))
        return True

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:  # the transaction is still open: the connection cannot be reused as is
            self._pool.release(conn, broken=True)


class _ATxn:
    """The asyncio twin of :class:`_Txn`."""

    __slots__ = ("_conn", "_half", "_sql", "records")

    def __init__(
        self, half: _AsyncHalf, records: list[Record | None], conn: pgc.AsyncLink | None, sql: Statements
    ) -> None:
        self.records = records
        self._half, self._conn, self._sql = half, conn, sql

    async def commit(self, changes: Sequence[Change]) -> bool:
        conn, self._conn = self._conn, None
        if conn is None:
            return True
        await self._half.commit(conn, self._sql.write(changes))
        return True

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:  # the transaction is still open: the connection cannot be reused as is
            self._half.pool.release(conn, broken=True)


class _Setup:
    """Creates the table once per store (both halves share it), serialized by a lock and by the DDL's
    advisory lock across processes."""

    def __init__(self, sql: Statements, auto_create: bool) -> None:
        self.sql = sql
        self.needed = auto_create
        self.lock = threading.Lock()

    def run(self, conn: pgc.Link, timeout_s: float) -> None:
        if self.needed:
            with self.lock:
                if self.needed:
                    conn.exchange(self.sql.create, timeout_s)
                    self.needed = False

    async def arun(self, conn: pgc.AsyncLink, timeout_s: float) -> None:
        if self.needed:
            await conn.exchange(self.sql.create, timeout_s)
            self.needed = False


@dataclass(frozen=True)
class _Conf:
    """What both halves of a store connect and speak with (built once by the store)."""

    url: str
    conn_kwargs: dict[str, Any]
    sql: Statements
    setup: _Setup
    op_timeout_s: float
    pool_size: int
    acquire_timeout_s: float


class PostgresStore(SnapshotStore):
    """A ``ScriptStore`` on PostgreSQL (psycopg 3): same Lua, state as JSON rows (see the module doc).

    ``url`` is a libpq URL or conninfo (``postgresql://user@host:5432/db``). ``table`` (default
    ``throttlekit``, optionally ``schema.table``) is created on first use when ``auto_create``. ``prefix``
    is the store-level key prefix. ``clock`` measures TTLs and answers ``SERVER_TIME`` (default: the
    system clock; a fleet shares one limit as long as its hosts' clocks agree). ``pool_size`` bounds
    connections per API (sync and async pools are separate); size it to the caller's concurrency.
    ``synchronous_commit`` sets that server setting for the store's sessions (see the module doc).
    Connections are opened lazily: constructing the store never touches the network.
    Thread-safe (sync API); the async API belongs to one event loop at a time.
    """

    def __init__(
        self,
        url: str = "postgresql://postgres@127.0.0.1:5432/postgres",
        *,
        table: str = "throttlekit",
        prefix: str = "",
        clock: Clock | None = None,
        pool_size: int = 10,
        connect_timeout_s: int = 2,
        statement_timeout_ms: int = 2000,
        lock_timeout_ms: int = 1000,
        acquire_timeout_s: float = 2.0,
        op_timeout_s: float = 5.0,
        sweep_interval_ms: int = 60_000,
        auto_create: bool = True,
        synchronous_commit: str | None = None,
        runtime: str | None = None,
    ) -> None:
        pgc.psycopg()
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigError(f"pool_size must be an integer >= 1, got {pool_size!r}")
        if not isinstance(sweep_interval_ms, int) or sweep_interval_ms < 0:
            raise ConfigError(
                f"sweep_interval_ms must be an integer >= 0 (0 disables), got {sweep_interval_ms!r}"
            )
        if synchronous_commit is not None and synchronous_commit not in _SYNC_COMMIT:
            raise ConfigError(
                f"synchronous_commit must be one of {', '.join(_SYNC_COMMIT)}, got {synchronous_commit!r}"
            )
        super().__init__(clock=clock, prefix=prefix, max_retries=0, runtime=runtime)
        self._sql = Statements(table)
        self.table = table
        self.url = url
        self.op_timeout_s = op_timeout_s
        self.sweep_interval_ms = sweep_interval_ms
        self._setup = _Setup(self._sql, auto_create)
        extra = f"-c synchronous_commit={synchronous_commit}" if synchronous_commit else ""
        self._conn_kwargs = pgc.conn_kwargs(
            url, connect_timeout_s, statement_timeout_ms, lock_timeout_ms, op_timeout_s, extra
        )
        self._conf = _Conf(url, self._conn_kwargs, self._sql, self._setup, op_timeout_s, pool_size,
                           acquire_timeout_s)  # fmt: skip
        self._pool = Pool(self._connect, pool_size, acquire_timeout_s)
        self._transport = self
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._aio: _AsyncHalf | None = None

    # -- connections ------------------------------------------------------------------------------
    def _connect(self) -> pgc.Link:
        """A new pooled connection (the table created first if needed); the first one starts the sweeper."""
        if self._sweeper is None:
            self._start_sweeper()
        try:
            conn = pgc.connect(self.url, self._conn_kwargs)
        except Exception as exc:
            raise pgc.store_error(exc) from exc
        try:
            self._setup.run(conn, self.op_timeout_s)
        except Exception as exc:
            conn.close()
            raise pgc.store_error(exc) from exc
        return conn

    # -- StateStore -------------------------------------------------------------------------------
    def begin(self, keys: Sequence[str], write: bool) -> _Txn:
        query = self._sql.begin_read(keys) if write else self._sql.read(keys)
        conn, result = self._read(query, write)
        return _Txn(self, records(keys, result), conn if write else None, self._sql, self._pool)

    def _read(self, query: bytes, write: bool, retry: bool = True) -> tuple[pgc.Link, Any]:
        """The first exchange of a decision on a pooled connection: ``(connection, last result)``. With
        ``write`` the connection stays checked out (its open transaction holds the locks) until
        :meth:`_commit`, or a ``release(conn, broken=True)``; without, it is back in the pool. A pooled
        connection found dropped (the server restarted) is retried once on a fresh one: nothing was
        written. Every failure is a ``StoreError``."""
        conn, fresh = self._pool.acquire()  # a closed store's pool raises "postgres store is closed"
        self.round_trips += 1
        try:
            result = conn.exchange(query, self.op_timeout_s)
        except BaseException as exc:  # an interrupt too: the connection is in an unknown state, drop it
            self._pool.release(conn, broken=True)
            if not isinstance(exc, Exception):
                raise
            if fresh or not retry or not pgc.is_connection_error(exc):
                raise pgc.store_error(exc) from exc
            self._pool.discard_idle()  # the server restarted: every idle connection is dead
            return self._read(query, write, False)  # nothing was written: safe to retry once
        if not write:
            self._pool.release(conn, broken=False)
        return conn, result

    def _commit(self, conn: pgc.Link, query: bytes, decision: bool = True) -> Any:
        """The last exchange on a checked-out connection (for a decision, the one that ends the transaction
        :meth:`_read` opened: the writes and ``COMMIT``; ``decision`` False: an autocommit statement, not
        counted in ``round_trips``): its last result, and the connection back in the pool. On any failure
        (an interrupt too, as in :meth:`_read`) the connection is dropped and the failure raised (a
        ``StoreError`` unless it is not an ``Exception``)."""
        if decision:
            self.round_trips += 1
        try:
            res = conn.exchange(query, self.op_timeout_s)
        except BaseException as exc:
            self._pool.release(conn, broken=True)
            if not isinstance(exc, Exception):
                raise
            raise pgc.store_error(exc) from exc
        self._pool.release(conn, broken=False)
        return res

    def bind(self, name: str, params: Sequence[Any], *, guarded: bool = True) -> BoundCall:
        """:meth:`~throttlekit.stores._snapshot.SnapshotStore.bind`, with a whole one-key decision in the
        returned call for a transform that writes: queue on the key, read under its advisory lock
        (:meth:`_read`), decide (:meth:`_decide1`: the executor's one-key step, its constants fixed in Lua
        once), write and commit (:meth:`_commit`). The same statements, step and errors as :meth:`eval`,
        without its transaction objects, records and changes (with the cheaper codec and statements, 30%
        fewer client instructions per decision: ``docs/stores.md``, "A one-key decision built at bind()
        time"). :meth:`abind` is the same decision over the asyncio transport."""
        t = self._exec.transform(name)
        if t.read_only:
            return super().bind(name, params, guarded=guarded)
        decide = self._decide1(t, params)
        acquire, release = self._keylocks.acquire, self._keylocks.release
        read, commit, drop = self._read, self._commit, self._pool.release
        begin_read1 = self._sql.begin_read1_template

        def call(key: str, now_ms: float, *last: Last) -> Reply:
            held = acquire((key,))
            try:
                k = literal(key)
                conn, result = read(begin_read1 % (k, k), True)
                try:
                    reply, query = decide(key, k, result, now_ms, last)
                except BaseException:
                    drop(conn, broken=True)  # the transaction is still open: the connection is not reusable
                    raise
                commit(conn, query)
                return reply
            finally:
                release(held)

        return call

    def abind(self, name: str, params: Sequence[Any]) -> AsyncBoundCall:
        """The asyncio twin of :meth:`bind`: the same one-key decision (:meth:`_decide1`) between the
        asyncio transport's read and commit (``_AsyncHalf.read``/``commit``, the event loop's own pool)."""
        t = self._exec.transform(name)
        if t.read_only:
            return super().abind(name, params)
        decide = self._decide1(t, params)
        keylocks, transport = self._keylocks, self._atransport
        begin_read1 = self._sql.begin_read1_template

        async def call(key: str, now_ms: float, *last: Last) -> Reply:
            held = await keylocks.aacquire((key,))
            try:
                aio = await transport()
                k = literal(key)
                conn, result = await aio.read(begin_read1 % (k, k), True)
                try:
                    reply, query = decide(key, k, result, now_ms, last)
                except BaseException:
                    aio.pool.release(conn, broken=True)  # the transaction is still open
                    raise
                await aio.commit(conn, query)
                return reply
            finally:
                keylocks.arelease(held)

        return call

    def _decide1(self, t: Transform, params: Sequence[Any]) -> Callable[..., tuple[Reply, bytes]]:
        """The I/O-free middle of a one-key decision, shared by :meth:`bind` and :meth:`abind`:
        ``(key, literal, read result, now_ms, per-call ARGV) -> (reply, the write-and-COMMIT query)``. The
        clock is read after the read (see ``_snapshot``'s module doc: Time)."""
        run = self._exec.bind1(t, params)
        write1 = self._sql.write1
        store, server = self, SERVER_TIME

        def decide(
            key: str, k: bytes, result: Any, now_ms: float, last: tuple[Last, ...]
        ) -> tuple[Reply, bytes]:
            state, expires_at = record1(result)
            clock_ms = int(store.clock.now_ms())
            now = clock_ms if now_ms == server else now_ms
            reply, out = run(key, state, expires_at, clock_ms, now, last)
            return reply, write1(k, out)

        return decide

    def _simple(self, query: bytes) -> Any:
        """One autocommit exchange on a pooled connection; its last result."""
        conn, _ = self._pool.acquire()
        return self._commit(conn, query, False)

    def delete(self, key: str) -> None:
        self._simple(self._sql.delete(key))

    def sweep(self) -> int:
        """Delete up to 10,000 expired rows now; returns how many were deleted."""
        return int(self._simple(self._sql.sweep(int(self.clock.now_ms()))).command_tuples or 0)

    def _start_sweeper(self) -> None:
        if self._sweeper is None and self.sweep_interval_ms > 0:
            with self._lock:
                if self._sweeper is None:
                    self._sweeper = threading.Thread(
                        target=self._sweep_loop, name="throttlekit-pg-sweep", daemon=True
                    )
                    self._sweeper.start()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_interval_ms / 1000):
            try:
                while self.sweep() >= SWEEP_BATCH and not self._stop.is_set():
                    pass
            except StoreError:
                pass  # an outage is reported by decisions; the next pass retries

    async def _atransport(self) -> _AsyncHalf:
        loop = asyncio.get_running_loop()
        aio = self._aio
        if aio is None or aio.loop is not loop:
            if self._closed:
                raise StoreError("postgres store is closed")
            if aio is not None:
                aio.abandon()
            aio = self._aio = _AsyncHalf(self, self._conf, loop)
        return aio

    # -- the startup check ------------------------------------------------------------------------
    def check_startup(self) -> None:
        """The startup check, on a dedicated connection: the server is reachable (else ``StoreError``,
        bounded by the connect timeout), the database, role and password are accepted, and the table
        exists with the expected columns and privileges or can be created (else ``ConfigError`` saying
        exactly what is wrong; the password is never printed)."""
        try:
            conn = pgc.connect(self.url, self._conn_kwargs)
        except Exception as exc:
            raise pgc.startup_error(exc, self.url) from None
        where = f"{pgc.redact(self.url)}"
        try:
            exists, missing, columns = (
                None if v is None else v.decode() for v in row(self._inspect(conn, self._sql.inspect))
            )
            if exists != "t":
                if not self._setup.needed:
                    raise ConfigError(f'postgres: table "{self.table}" does not exist ({where}); create it or '
                                      "let the store create it (auto_create)")  # fmt: skip
                if row(self._inspect(conn, self._sql.schema_exists))[0] != b"t":
                    schema = self._sql.schema or "the current schema"
                    raise ConfigError(f'postgres: schema "{schema}" does not exist ({where})')
                try:
                    self._setup.run(conn, self.op_timeout_s)
                except Exception as exc:
                    raise pgc.startup_error(exc, self.url) from None
                return
            expected = "key text, state text, expires_at bigint"
            if columns != expected:
                raise ConfigError(f'postgres: table "{self.table}" has columns ({columns}); this store needs '
                                  f"({expected}) ({where})")  # fmt: skip
            if missing:
                raise ConfigError(f'postgres: the role lacks {missing} on table "{self.table}" ({where})')
        finally:
            conn.close()

    def _inspect(self, conn: pgc.Link, query: bytes) -> Any:
        try:
            return conn.exchange(query, self.op_timeout_s)
        except Exception as exc:
            raise pgc.startup_error(exc, self.url) from None

    async def aping(self) -> None:
        """See :meth:`check_startup` (run in a worker thread: startup only)."""
        if self._closed:
            raise StoreError("postgres store is closed")
        await asyncio.to_thread(self.check_startup)

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        """Idempotent: stops the sweeper and closes the sync pool (and abandons the async one)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._pool.close()
        if self._aio is not None:
            self._aio.abandon()

    async def aclose(self) -> None:
        """Idempotent: as :meth:`close`, closing async connections gracefully."""
        if self._aio is not None:
            await self._aio.aclose()
        self.close()

    def drop_table(self) -> None:
        """Drop the state table (tests and tooling)."""
        self._simple(self._sql.drop)
        self._setup.needed = True

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"PostgresStore(table={self.table!r}, prefix={self.prefix!r})"


#: The async API is the same class (``aeval``/``aeval_many``/``adelete``/``aping``/``aclose``).
AsyncPostgresStore = PostgresStore


class _AsyncHalf:
    """The asyncio transport of a :class:`PostgresStore`, bound to one event loop: its own pool and
    sweeper task over the store's :class:`_Conf`; it updates the store's public ``round_trips``."""

    def __init__(self, store: PostgresStore, conf: _Conf, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.conf = conf
        self.loop = loop
        self.pool = AsyncPool(self._connect, conf.pool_size, conf.acquire_timeout_s)
        self._sweeper: asyncio.Task[None] | None = None

    async def _connect(self) -> pgc.AsyncLink:
        c = self.conf
        try:
            conn = await pgc.aconnect(c.url, c.conn_kwargs, c.op_timeout_s)
        except Exception as exc:
            raise pgc.store_error(exc) from exc
        try:
            await c.setup.arun(conn, c.op_timeout_s)
        except Exception as exc:
            await conn.close()
            raise pgc.store_error(exc) from exc
        return conn

    async def begin(self, keys: Sequence[str], write: bool) -> _ATxn:
        sql = self.conf.sql
        query = sql.begin_read(keys) if write else sql.read(keys)
        conn, result = await self.read(query, write)
        return _ATxn(self, records(keys, result), conn if write else None, self.conf.sql)

    async def read(self, query: bytes, write: bool, retry: bool = True) -> tuple[pgc.AsyncLink, Any]:
        """The asyncio twin of :meth:`PostgresStore._read` (starts the sweeper on first use)."""
        s, c = self.store, self.conf
        if self._sweeper is None and s.sweep_interval_ms > 0:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="throttlekit-pg-sweep")
        conn, fresh = await self.pool.acquire()
        s.round_trips += 1
        try:
            result = await conn.exchange(query, c.op_timeout_s)
        except BaseException as exc:  # incl. cancellation: the connection is in an unknown state
            self.pool.release(conn, broken=True)
            if not isinstance(exc, Exception):
                raise
            if fresh or not retry or not pgc.is_connection_error(exc):
                raise pgc.store_error(exc) from exc
            self.pool.discard_idle()  # the server restarted: every idle connection is dead
            return await self.read(query, write, False)  # nothing was written: safe to retry once
        if not write:
            self.pool.release(conn, broken=False)
        return conn, result

    async def commit(self, conn: pgc.AsyncLink, query: bytes, decision: bool = True) -> Any:
        """The asyncio twin of :meth:`PostgresStore._commit`."""
        if decision:
            self.store.round_trips += 1
        try:
            res = await conn.exchange(query, self.conf.op_timeout_s)
        except BaseException as exc:  # incl. cancellation: the connection is in an unknown state
            self.pool.release(conn, broken=True)
            if isinstance(exc, Exception):
                raise pgc.store_error(exc) from exc
            raise
        self.pool.release(conn, broken=False)
        return res

    async def _simple(self, query: bytes) -> Any:
        conn, _ = await self.pool.acquire()
        return await self.commit(conn, query, False)

    async def delete(self, key: str) -> None:
        await self._simple(self.conf.sql.delete(key))

    async def sweep(self) -> int:
        query = self.conf.sql.sweep(int(self.store.clock.now_ms()))
        return int((await self._simple(query)).command_tuples or 0)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.store.sweep_interval_ms / 1000)
            try:
                while await self.sweep() >= SWEEP_BATCH:
                    pass
            except StoreError:
                pass

    def abandon(self) -> None:
        """Drop everything without awaiting (another loop took over, or a sync close)."""
        if self._sweeper is not None and not self._sweeper.done():
            try:
                self._sweeper.cancel()
            except RuntimeError:  # pragma: no cover - the loop is already closed
                pass
        self.pool.abandon()

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except (asyncio.CancelledError, Exception):
                pass
            self._sweeper = None
        await self.pool.aclose()


#: Store options a URL may carry, with their types (everything else must be a libpq parameter).
_URL_OPTIONS: dict[str, type] = {
    "table": str,
    "prefix": str,
    "pool_size": int,
    "sweep_interval_ms": int,
    "statement_timeout_ms": int,
    "lock_timeout_ms": int,
    "synchronous_commit": str,
}


def _libpq_keywords() -> set[str]:
    from psycopg import pq

    return {o.keyword.decode() for o in pq.Conninfo.get_defaults()}


def from_url(url: str, **kwargs: Any) -> PostgresStore:
    """``postgresql://user@host:5432/db?table=T&prefix=P`` (also ``postgres://``). Store parameters in the
    query: ``table``, ``prefix``, ``pool_size``, ``sweep_interval_ms``, ``statement_timeout_ms``,
    ``lock_timeout_ms``, ``synchronous_commit``; libpq's own parameters (``sslmode``,
    ``connect_timeout``, ...) go to libpq. Anything else is a ``ConfigError`` naming it."""
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

    pgc.psycopg()
    parts = urlsplit(url)
    shown = pgc.redact(url)
    libpq = _libpq_keywords()
    rest: list[tuple[str, str]] = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        kind = _URL_OPTIONS.get(k)
        if kind is int:
            try:
                kwargs.setdefault(k, int(v))
            except ValueError:
                raise ConfigError(f"store URL {shown}: {k} must be an integer, got {v!r}") from None
        elif kind is str:
            kwargs.setdefault(k, v)
        elif k in libpq:
            rest.append((k, v))
        else:
            raise ConfigError(
                f"store URL {shown}: unknown parameter {k!r}; allowed: {', '.join(sorted(_URL_OPTIONS))} "
                f"and libpq's ({', '.join(sorted(libpq))})"
            )
    clean = urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(rest, quote_via=quote), "")
    )  # libpq: %20
    return PostgresStore(clean, **kwargs)
