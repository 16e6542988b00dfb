"""PostgreSQL store: the Lua transforms under lupa over a row per key, serialized by an advisory lock.

One decision is one transaction in **two round trips** (psycopg pipeline mode):

1. ``BEGIN; SELECT pg_advisory_xact_lock(hashtextextended(key, 0)); SELECT state, expires_at ... WHERE
   key = $1 AND expires_at >= $now`` (one sync: the lock and the read travel together; the read is a
   separate statement so its snapshot is taken after the lock is held);
2. ``INSERT ... ON CONFLICT (key) DO UPDATE`` / ``DELETE`` for what changed, then ``COMMIT`` (or just
   ``COMMIT`` when nothing changed).

Read-only transforms (peek, forecast) are one round trip: a plain ``SELECT`` in autocommit, no lock.
Lock waits never retry: the lock serializes writers, so the executor's CAS retry never triggers.

Table (created on first use, DDL serialized by an advisory lock so concurrent first users don't race)::

    CREATE TABLE <table> (key TEXT PRIMARY KEY, state TEXT NOT NULL, expires_at BIGINT NOT NULL);
    CREATE INDEX <table>_expires_at_idx ON <table> (expires_at);

``state`` is JSON in the upstream shapes (see :mod:`throttlekit.stores._codecs`); ``expires_at`` is the
absolute deadline in epoch ms (``9223372036854775807`` = never). A row is live while ``now <=
expires_at``; expired rows are ignored on read and deleted by a periodic sweep (``sweep_interval_ms``,
default 60 s, at most 10,000 rows per pass; a sleeping daemon thread for the sync API, an asyncio task
for the async API). Timeouts (all documented in ``docs/stores.md``): ``connect_timeout_s`` (libpq
``connect_timeout``), ``statement_timeout_ms`` and ``lock_timeout_ms`` (server side), TCP keepalives and
``tcp_user_timeout`` (dead peers), ``acquire_timeout_s`` (pool exhausted) and, on the async API,
``op_timeout_s`` (a hard client-side bound on a whole decision). Every failure raises ``StoreError``.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Sequence
from typing import Any

from .._clock import Clock
from .._errors import ConfigError, StoreError
from ._pgpool import AsyncPool, Pool
from ._snapshot import NEVER, Change, Record, SnapshotStore

__all__ = ["AsyncPostgresStore", "PostgresStore"]

INSTALL_HINT = "the Postgres store needs psycopg: pip install 'throttlekit-server[postgres]'"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_SWEEP_BATCH = 10_000


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ConfigError(INSTALL_HINT) from exc
    return psycopg


_TIMED: list[Any] = []


def _timed_connection_class() -> Any:
    """``psycopg.Connection`` whose every network wait is bounded by ``op_timeout_s`` (psycopg >= 3.2 has
    the ``timeout`` parameter; older versions keep the default unbounded wait). A sync call on a peer that
    accepts bytes but never answers (a frozen server or proxy) then fails instead of hanging."""
    if not _TIMED:
        import inspect

        psycopg = _psycopg()
        if "timeout" not in inspect.signature(psycopg.Connection.wait).parameters:  # pragma: no cover
            _TIMED.append(psycopg.Connection)
        else:

            class TimedConnection(psycopg.Connection):  # type: ignore[misc,name-defined]
                op_timeout_s: float = 5.0

                def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
                    return super().wait(gen, interval, self.op_timeout_s if timeout is None else timeout)

            _TIMED.append(TimedConnection)
    return _TIMED[0]


class _Sql:
    """The statements for one table (identifiers validated and quoted once)."""

    def __init__(self, table: str) -> None:
        if not isinstance(table, str) or not _IDENT.match(table):
            raise ConfigError(
                f"postgres table must match ^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)?$, got {table!r}"
            )
        from psycopg import sql

        parts = table.split(".")
        t = sql.Identifier(*parts)
        idx = sql.Identifier(f"{parts[-1]}_expires_at_idx")
        self.table = table
        self.ddl_lock = f"throttlekit:ddl:{table}"
        self.create = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (key TEXT PRIMARY KEY, state TEXT NOT NULL, expires_at BIGINT NOT NULL)"
        ).format(t)
        self.index = sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (expires_at)").format(idx, t)
        self.lock = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
        self.read_one = sql.SQL(
            "SELECT key, state, expires_at FROM {} WHERE key = %s AND expires_at >= %s"
        ).format(t)
        self.read_many = sql.SQL(
            "SELECT key, state, expires_at FROM {} WHERE key = ANY(%s) AND expires_at >= %s"
        ).format(t)
        self.upsert = sql.SQL(
            "INSERT INTO {} (key, state, expires_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, expires_at = EXCLUDED.expires_at"
        ).format(t)
        self.delete = sql.SQL("DELETE FROM {} WHERE key = %s").format(t)
        self.sweep = sql.SQL(
            "DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE expires_at < %s LIMIT {n})"
        ).format(t=t, n=sql.Literal(_SWEEP_BATCH))


def _records(keys: Sequence[str], rows: Sequence[tuple[str, str, int]]) -> list[Record | None]:
    by_key = {k: Record(s, None if e >= NEVER else int(e)) for k, s, e in rows}
    return [by_key.get(k) for k in keys]


def _writes(sql: _Sql, changes: Sequence[Change]) -> list[tuple[Any, list[Any]]]:
    out: list[tuple[Any, list[Any]]] = []
    for c in changes:
        if c.state is None:
            out.append((sql.delete, [c.key]))
        else:
            out.append((sql.upsert, [c.key, c.state, NEVER if c.expires_at_ms is None else c.expires_at_ms]))
    return out


def _store_error(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    return StoreError(f"postgres: {type(exc).__name__}: {str(exc).strip() or 'error'}", exc)


class _Txn:
    """A sync decision attempt holding one pooled connection inside an open transaction (or none)."""

    def __init__(self, store: PostgresStore, conn: Any, records: list[Record | None], open_tx: bool) -> None:
        self._store, self._conn, self.records, self._open = store, conn, records, open_tx

    def commit(self, changes: Sequence[Change]) -> bool:
        conn = self._conn
        if conn is None:
            return True
        try:
            if self._open:
                self._store.round_trips += 1
                with conn.pipeline():
                    try:
                        for q, params in _writes(self._store._sql, changes):
                            conn.execute(q, params)
                        conn.execute("COMMIT")
                    except BaseException:
                        _kill(conn)
                        raise
                self._open = False
        except Exception as exc:
            self._release(broken=True)
            raise _store_error(exc) from exc
        self._release(broken=False)
        return True

    def _release(self, broken: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._store._pool.release(conn, broken=broken or self._open)

    def close(self) -> None:
        self._release(broken=False)


class _ATxn:
    def __init__(self, t: _AsyncTransport, conn: Any, records: list[Record | None], open_tx: bool) -> None:
        self._t, self._conn, self.records, self._open = t, conn, records, open_tx

    async def commit(self, changes: Sequence[Change]) -> bool:
        conn = self._conn
        if conn is None:
            return True
        try:
            if self._open:
                self._t.store.round_trips += 1
                await asyncio.wait_for(self._write(conn, changes), self._t.op_timeout_s)
                self._open = False
        except BaseException as exc:  # incl. cancellation: the connection is in an unknown state
            self._release(broken=True)
            if isinstance(exc, Exception):
                raise _store_error(exc) from exc
            raise
        self._release(broken=False)
        return True

    async def _write(self, conn: Any, changes: Sequence[Change]) -> None:
        async with conn.pipeline():
            for q, params in _writes(self._t.sql, changes):
                await conn.execute(q, params)
            await conn.execute("COMMIT")

    def _release(self, broken: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._t.pool.release(conn, broken=broken or self._open)

    async def close(self) -> None:
        self._release(broken=False)


class PostgresStore(SnapshotStore):
    """A ``ScriptStore`` on PostgreSQL (psycopg 3): same Lua, state as JSON rows (see the module doc).

    ``url`` is a libpq URL or conninfo (``postgresql://user@host:5432/db``). ``table`` (default
    ``throttlekit``, optionally ``schema.table``) is created on first use when ``auto_create``. ``prefix``
    is the store-level key prefix. ``clock`` measures TTLs and answers ``SERVER_TIME`` (default: the
    system clock; a fleet shares one limit as long as its hosts' clocks agree). ``pool_size`` bounds
    connections per API (sync and async pools are separate); size it to the caller's concurrency.
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
        runtime: str | None = None,
    ) -> None:
        _psycopg()
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigError(f"pool_size must be an integer >= 1, got {pool_size!r}")
        if not isinstance(sweep_interval_ms, int) or sweep_interval_ms < 0:
            raise ConfigError(
                f"sweep_interval_ms must be an integer >= 0 (0 disables), got {sweep_interval_ms!r}"
            )
        super().__init__(clock=clock, prefix=prefix, max_retries=0, runtime=runtime)
        self._sql = _Sql(table)
        self.table = table
        self.url = url
        self.op_timeout_s = op_timeout_s
        self.sweep_interval_ms = sweep_interval_ms
        self._auto_create = auto_create
        self._conn_kwargs = _conn_kwargs(
            url, connect_timeout_s, statement_timeout_ms, lock_timeout_ms, op_timeout_s
        )
        self._pool = Pool(self._connect, pool_size, acquire_timeout_s)
        self._transport = self
        self._ready = False
        self._ready_lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._aio: _AsyncTransport | None = None
        self._pool_size = pool_size
        self._acquire_timeout_s = acquire_timeout_s

    # -- connections ------------------------------------------------------------------------------
    def _connect(self) -> Any:
        try:
            conn = _timed_connection_class().connect(self.url, autocommit=True, **self._conn_kwargs)
        except Exception as exc:
            raise _store_error(exc) from exc
        conn.op_timeout_s = self.op_timeout_s
        if not self._ready and self._auto_create:
            with self._ready_lock:
                if not self._ready:
                    try:
                        _create_table(conn, self._sql)
                    except Exception as exc:
                        conn.close()
                        raise _store_error(exc) from exc
                    self._ready = True
        return conn

    # -- StateStore -------------------------------------------------------------------------------
    def begin(self, keys: Sequence[str], now_ms: int, write: bool) -> _Txn:
        if self._closed:
            raise StoreError("postgres store is closed")
        self._start_sweeper()
        for attempt in (0, 1):
            conn, fresh = self._pool.acquire()
            self.round_trips += 1
            try:
                rows = _read(conn, self._sql, keys, now_ms, write)
            except Exception as exc:
                self._pool.release(conn, broken=True)
                if not fresh and attempt == 0 and _is_connection_error(exc):
                    self._pool.discard_idle()  # the server restarted: every idle connection is dead
                    continue  # nothing was written: safe to retry once on a fresh connection
                raise _store_error(exc) from exc
            return _Txn(self, conn, _records(keys, rows), write)
        raise AssertionError("unreachable")  # pragma: no cover

    def delete(self, key: str) -> None:
        conn, _ = self._pool.acquire()
        try:
            conn.execute(self._sql.delete, [key])
        except Exception as exc:
            self._pool.release(conn, broken=True)
            raise _store_error(exc) from exc
        self._pool.release(conn, broken=False)

    def sweep(self) -> int:
        """Delete up to 10,000 expired rows now; returns how many were deleted."""
        conn, _ = self._pool.acquire()
        try:
            n = conn.execute(self._sql.sweep, [int(self.clock.now_ms())]).rowcount
        except Exception as exc:
            self._pool.release(conn, broken=True)
            raise _store_error(exc) from exc
        self._pool.release(conn, broken=False)
        return int(n)

    def _start_sweeper(self) -> None:
        if self._sweeper is None and self.sweep_interval_ms > 0:
            with self._ready_lock:
                if self._sweeper is None:
                    self._sweeper = threading.Thread(
                        target=self._sweep_loop, name="throttlekit-pg-sweep", daemon=True
                    )
                    self._sweeper.start()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_interval_ms / 1000):
            try:
                while self.sweep() >= _SWEEP_BATCH and not self._stop.is_set():
                    pass
            except StoreError:
                pass  # an outage is reported by decisions; the next pass retries

    async def _atransport(self) -> _AsyncTransport:
        loop = asyncio.get_running_loop()
        aio = self._aio
        if aio is None or aio.loop is not loop:
            if self._closed:
                raise StoreError("postgres store is closed")
            if aio is not None:
                aio.abandon()
            aio = self._aio = _AsyncTransport(self, loop)
        return aio

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
        conn, _ = self._pool.acquire()
        try:
            from psycopg import sql

            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(*self.table.split("."))))
        finally:
            self._pool.release(conn, broken=False)
        self._ready = False

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


#: The async API is the same class (``aeval``/``aeval_many``/``adelete``/``aclose``).
AsyncPostgresStore = PostgresStore


class _AsyncTransport:
    """The async half of a :class:`PostgresStore`, bound to one event loop."""

    def __init__(self, store: PostgresStore, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop
        self.sql = store._sql
        self.op_timeout_s = store.op_timeout_s
        self.pool = AsyncPool(self._connect, store._pool_size, store._acquire_timeout_s)
        self._sweeper: asyncio.Task[None] | None = None

    async def _connect(self) -> Any:
        psycopg = _psycopg()
        s = self.store
        try:
            conn = await asyncio.wait_for(
                psycopg.AsyncConnection.connect(s.url, autocommit=True, **s._conn_kwargs), self.op_timeout_s
            )
        except Exception as exc:
            raise _store_error(exc) from exc
        if not s._ready and s._auto_create:
            try:
                await asyncio.wait_for(_acreate_table(conn, self.sql), self.op_timeout_s)
            except Exception as exc:
                await conn.close()
                raise _store_error(exc) from exc
            s._ready = True
        return conn

    async def begin(self, keys: Sequence[str], now_ms: int, write: bool) -> _ATxn:
        if self._sweeper is None and self.store.sweep_interval_ms > 0:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="throttlekit-pg-sweep")
        for attempt in (0, 1):
            conn, fresh = await self.pool.acquire()
            self.store.round_trips += 1
            try:
                rows = await asyncio.wait_for(_aread(conn, self.sql, keys, now_ms, write), self.op_timeout_s)
            except BaseException as exc:
                self.pool.release(conn, broken=True)
                if not isinstance(exc, Exception):
                    raise
                if not fresh and attempt == 0 and _is_connection_error(exc):
                    self.pool.discard_idle()
                    continue
                raise _store_error(exc) from exc
            return _ATxn(self, conn, _records(keys, rows), write)
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete(self, key: str) -> None:
        conn, _ = await self.pool.acquire()
        try:
            await asyncio.wait_for(conn.execute(self.sql.delete, [key]), self.op_timeout_s)
        except Exception as exc:
            self.pool.release(conn, broken=True)
            raise _store_error(exc) from exc
        self.pool.release(conn, broken=False)

    async def sweep(self) -> int:
        conn, _ = await self.pool.acquire()
        try:
            cur = await asyncio.wait_for(
                conn.execute(self.sql.sweep, [int(self.store.clock.now_ms())]), self.op_timeout_s
            )
        except Exception as exc:
            self.pool.release(conn, broken=True)
            raise _store_error(exc) from exc
        self.pool.release(conn, broken=False)
        return int(cur.rowcount)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.store.sweep_interval_ms / 1000)
            try:
                while await self.sweep() >= _SWEEP_BATCH:
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


def _conn_kwargs(
    url: str, connect_timeout_s: int, statement_ms: int, lock_ms: int, op_timeout_s: float
) -> dict[str, Any]:
    """libpq parameters: timeouts and keepalives, merged into any ``options`` the URL already has."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(url)
    except Exception as exc:
        raise ConfigError(f"invalid postgres URL {url!r}: {exc}") from exc
    opts = (
        f"-c statement_timeout={int(statement_ms)} -c lock_timeout={int(lock_ms)} "
        f"-c idle_in_transaction_session_timeout={max(int(op_timeout_s * 1000), int(statement_ms)) * 2}"
    )
    kw: dict[str, Any] = {"options": f"{given['options']} {opts}" if given.get("options") else opts}
    kw.setdefault("connect_timeout", given.get("connect_timeout", max(1, int(connect_timeout_s))))
    for k, v in (
        ("keepalives", 1),
        ("keepalives_idle", 5),
        ("keepalives_interval", 2),
        ("keepalives_count", 2),
        ("tcp_user_timeout", int(op_timeout_s * 1000)),
    ):
        kw[k] = given.get(k, v)
    return kw


def _is_connection_error(exc: BaseException) -> bool:
    """A dropped connection (worth one retry on a fresh one), not a timeout (retrying would double it)."""
    psycopg = _psycopg()
    if type(exc).__name__ == "_WaitTimeout" or isinstance(exc, asyncio.TimeoutError):
        return False
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) and not isinstance(
        exc, (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable)
    )


def _create_table(conn: Any, sql: _Sql) -> None:
    with conn.transaction():
        conn.execute(sql.lock, [sql.ddl_lock])
        conn.execute(sql.create)
        conn.execute(sql.index)


async def _acreate_table(conn: Any, sql: _Sql) -> None:
    async with conn.transaction():
        await conn.execute(sql.lock, [sql.ddl_lock])
        await conn.execute(sql.create)
        await conn.execute(sql.index)


def _read(conn: Any, sql: _Sql, keys: Sequence[str], now_ms: int, write: bool) -> list[Any]:
    one = len(keys) == 1
    q, arg = (sql.read_one, keys[0]) if one else (sql.read_many, list(keys))
    if not write:
        return list(conn.execute(q, [arg, now_ms]).fetchall())
    with conn.pipeline() as p:
        try:
            conn.execute("BEGIN")
            for k in sorted(set(keys)):  # one global order: no deadlocks between multi-key transforms
                conn.execute(sql.lock, [k])
            cur = conn.execute(q, [arg, now_ms])
            p.sync()
        except BaseException:
            _kill(conn)
            raise
        return list(cur.fetchall())


def _kill(conn: Any) -> None:
    """Close the socket now, so leaving the pipeline block doesn't wait on a dead peer a second time."""
    try:
        conn.pgconn.finish()
    except Exception:  # pragma: no cover
        pass


async def _aread(conn: Any, sql: _Sql, keys: Sequence[str], now_ms: int, write: bool) -> list[Any]:
    one = len(keys) == 1
    q, arg = (sql.read_one, keys[0]) if one else (sql.read_many, list(keys))
    if not write:
        cur = await conn.execute(q, [arg, now_ms])
        return list(await cur.fetchall())
    async with conn.pipeline() as p:
        await conn.execute("BEGIN")
        for k in sorted(set(keys)):
            await conn.execute(sql.lock, [k])
        cur = await conn.execute(q, [arg, now_ms])
        await p.sync()
        return list(await cur.fetchall())


_URL_INTS = ("pool_size", "sweep_interval_ms", "statement_timeout_ms", "lock_timeout_ms")


def from_url(url: str, **kwargs: Any) -> PostgresStore:
    """``postgresql://user@host:5432/db?table=T&prefix=P`` (also ``postgres://``). Store parameters in the
    query: ``table``, ``prefix``, ``pool_size``, ``sweep_interval_ms``, ``statement_timeout_ms``,
    ``lock_timeout_ms``; every other parameter goes to libpq (``sslmode``, ``connect_timeout``, ...)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    rest: list[tuple[str, str]] = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in ("table", "prefix"):
            kwargs.setdefault(k, v)
        elif k in _URL_INTS:
            try:
                kwargs.setdefault(k, int(v))
            except ValueError:
                raise ConfigError(f"store URL {url!r}: {k} must be an integer, got {v!r}") from None
        else:
            rest.append((k, v))
    clean = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), ""))
    return PostgresStore(clean, **kwargs)
