"""The Postgres store's transport: connecting (sync and asyncio), one simple-query exchange, errors.

A connection is a link: :class:`Link` (sync) or :class:`AsyncLink` (asyncio), a psycopg connection whose
socket it waits on itself (a ``poll`` object, or a reader the event loop keeps, made once per
connection). A link's ``exchange`` sends one query string (several statements) through libpq, waits
for all of its results, bounded by ``op_timeout_s``, and returns the last one, raising the server's
error when a statement failed (:func:`last_ok`). Neither psycopg's cursor layer nor its wait is
involved: they cost more client CPU than the round trip itself. What is sent and how replies are
read lives in :mod:`throttlekit.stores._pgsql`; pooling in :mod:`throttlekit.stores._pgpool`.

Errors: every failure becomes :class:`~throttlekit.StoreError` (:func:`store_error`), except in the
startup check, where an answer from the server (a wrong database, role, password, schema or table)
is a :class:`~throttlekit.ConfigError` (:func:`startup_error`). Passwords never appear in messages:
:func:`redact` is the only way a URL is printed.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable, Sequence
from time import monotonic as _monotonic
from typing import Any

from .._errors import ConfigError, StoreError

__all__ = [
    "INSTALL_HINT",
    "AsyncLink",
    "Link",
    "aconnect",
    "conn_kwargs",
    "connect",
    "is_connection_error",
    "last_ok",
    "psycopg",
    "redact",
    "startup_error",
    "store_error",
]

INSTALL_HINT = "the Postgres store needs psycopg: pip install 'throttlekit-server[postgres]'"


def psycopg() -> Any:
    """The psycopg module (``ConfigError`` with the install hint when the extra is missing)."""
    try:
        import psycopg as module
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ConfigError(INSTALL_HINT) from exc
    return module


def redact(url: str) -> str:
    """``postgresql://host:port/db`` for messages: never the password (nor the query string)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(url)
    except Exception:
        return "postgresql://<unparsable URL>"
    host = d.get("host") or "localhost"
    port = d.get("port") or "5432"
    user = f"{d['user']}@" if d.get("user") else ""
    return f"postgresql://{user}{host}:{port}/{d.get('dbname') or ''}"


def conn_kwargs(
    url: str, connect_timeout_s: int, statement_ms: int, lock_ms: int, op_timeout_s: float, extra: str = ""
) -> dict[str, Any]:
    """libpq parameters: timeouts, keepalives and the settings the inlined literals rely on, merged into
    any ``options`` the URL already has. ``extra`` adds server settings (``-c name=value ...``)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(url)
    except Exception as exc:
        raise ConfigError(f"invalid postgres URL ({redact(url)}): {exc}") from None
    opts = (
        f"-c statement_timeout={int(statement_ms)} -c lock_timeout={int(lock_ms)} "
        f"-c idle_in_transaction_session_timeout={max(int(op_timeout_s * 1000), int(statement_ms)) * 2} "
        "-c standard_conforming_strings=on"
    )
    if extra:
        opts += " " + extra
    kw: dict[str, Any] = {"options": f"{given['options']} {opts}" if given.get("options") else opts}
    kw["client_encoding"] = "UTF8"
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


def store_error(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    if type(exc).__name__ == "_WaitTimeout" or isinstance(exc, asyncio.TimeoutError):
        return StoreError("postgres: no reply within op_timeout_s (the server or the network stalled)", exc)
    return StoreError(f"postgres: {type(exc).__name__}: {str(exc).strip() or 'error'}", exc)


def is_connection_error(exc: BaseException) -> bool:
    """A dropped connection (worth one retry on a fresh one), not a timeout (retrying would double it)."""
    pg = psycopg()
    if type(exc).__name__ == "_WaitTimeout" or isinstance(exc, asyncio.TimeoutError):
        return False
    return isinstance(exc, (pg.OperationalError, pg.InterfaceError)) and not isinstance(
        exc, (pg.errors.QueryCanceled, pg.errors.LockNotAvailable)
    )


#: FATAL answers that mean "not now" (an outage), not "wrong configuration".
_TRANSIENT = (
    "starting up",
    "shutting down",
    "in recovery mode",
    "too many clients",
    "terminating connection",
)


def startup_error(exc: BaseException, url: str) -> Exception:
    """The startup check's verdict: the server answered (a SQLSTATE, or libpq's ``FATAL:`` text from the
    handshake) -> ``ConfigError`` with the server's message; nothing answered (refused, timed out,
    unknown host) or the server is not ready -> ``StoreError``."""
    text = str(exc).strip()
    sqlstate = getattr(exc, "sqlstate", None)
    message = None
    if sqlstate and not sqlstate.startswith(("08", "57", "53")):  # connection, shutdown, resources
        diag = getattr(exc, "diag", None)
        message = getattr(diag, "message_primary", None) or text.splitlines()[-1]
    elif "FATAL:" in text and not any(t in text for t in _TRANSIENT):
        message = text.split("FATAL:", 1)[1].strip().splitlines()[0]
    if message:
        return ConfigError(f"postgres: {message.strip()} ({redact(url)})")
    return StoreError(f"postgres: cannot reach {redact(url)}: {text or type(exc).__name__}", exc)


def connect(url: str, kwargs: dict[str, Any]) -> Link:
    """A sync :class:`Link` in autocommit (``connect_timeout`` bounds it). Raises psycopg errors."""
    return Link(psycopg().Connection.connect(url, autocommit=True, **kwargs))


class Link:
    """One sync connection to Postgres: a psycopg ``Connection`` (autocommit) and ``poll`` objects on its
    socket, made once. An exchange sends its query and waits for the results with ``poll`` under one
    deadline (``op_timeout_s``), reading them with libpq's own calls: psycopg's ``Connection.wait`` and
    its generator cost about 7,500 more instructions per exchange, two exchanges per decision
    (``docs/stores.md``, "The transports: one wait per connection").

    psycopg runs libpq non-blocking, so a query larger than what the socket takes at once (a big state,
    a batch, a server slow to read) is left partly in libpq's buffer by ``send_query``: the exchange
    sends the rest as the socket takes it, under the same deadline, before it waits for the results."""

    __slots__ = ("_wait", "_wait_send", "conn", "pgconn")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        fd = self.pgconn.socket
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            self._wait: Callable[[float], Any] = poller.poll
            sending = select.poll()
            sending.register(fd, select.POLLIN | select.POLLOUT)
            self._wait_send: Callable[[float], Any] = sending.poll
        else:  # pragma: no cover - Windows: select has no poll there

            def wait(ms: float) -> Any:
                readable, _, failed = select.select([fd], [], [fd], ms / 1000.0)
                return readable or failed

            def wait_send(ms: float) -> Any:
                readable, writable, failed = select.select([fd], [fd], [fd], ms / 1000.0)
                return readable or writable or failed

            self._wait = wait
            self._wait_send = wait_send

    @property
    def closed(self) -> bool:
        return bool(self.conn.closed)

    def close(self) -> None:
        self.conn.close()

    def finish(self) -> None:
        """Close at once (libpq closes the socket): the pool's way to drop a connection."""
        try:
            self.pgconn.finish()
        except Exception:  # pragma: no cover - already gone
            pass

    def exchange(self, query: bytes, op_timeout_s: float) -> Any:
        """Send ``query`` (one simple-query message), wait for all of its results (bounded by
        ``op_timeout_s``: ``TimeoutError``) and return the last one, checked as by :func:`last_ok`
        (inline: this runs twice per decision). After a timeout or an error the caller drops the
        connection."""
        pg, wait = self.pgconn, self._wait
        pg.send_query(query)
        deadline = _monotonic() + op_timeout_s
        left_ms = op_timeout_s * 1000.0
        if pg.flush():  # the socket did not take the whole query: send the rest first
            self._send_rest(deadline)
            left_ms = (deadline - _monotonic()) * 1000.0
        results: list[Any] = []
        while True:
            if not wait(left_ms):
                raise TimeoutError("no reply within op_timeout_s")
            pg.consume_input()
            while not pg.is_busy():
                res = pg.get_result()
                if res is None:
                    if results and results[-1].status != _FATAL_ERROR:
                        return results[-1]
                    return last_ok(results)
                results.append(res)
            left_ms = (deadline - _monotonic()) * 1000.0  # a reply in several packets: the time left
            if left_ms <= 0:
                raise TimeoutError("no reply within op_timeout_s")

    def _send_rest(self, deadline: float) -> None:
        """Send what libpq still holds of the query as the socket takes it, reading what the server sends
        meanwhile (as libpq asks of a non-blocking sender, so that neither side waits on the other), until
        ``deadline``: ``TimeoutError``."""
        pg, wait = self.pgconn, self._wait_send
        while True:
            left_ms = (deadline - _monotonic()) * 1000.0
            if left_ms <= 0 or not wait(left_ms):
                raise TimeoutError("no reply within op_timeout_s")
            pg.consume_input()
            if not pg.flush():
                return


async def aconnect(url: str, kwargs: dict[str, Any], op_timeout_s: float) -> AsyncLink:
    """The asyncio twin of :func:`connect`: an :class:`AsyncLink` on the running loop."""
    conn = await asyncio.wait_for(
        psycopg().AsyncConnection.connect(url, autocommit=True, **kwargs), op_timeout_s
    )
    return AsyncLink(conn, asyncio.get_running_loop())


class AsyncLink:
    """One asyncio connection to Postgres: a psycopg ``AsyncConnection`` (connected, autocommit, its libpq
    handle non-blocking) whose socket the event loop watches for the connection's whole life.

    psycopg's own wait registers a reader on the socket and removes it again for every wait (``epoll_ctl``
    system calls and a loop callback each time, two waits per decision) and drives a generator per
    exchange. Here one reader is registered at connect and removed at close; an exchange parks on a
    future that the reader resolves, under one timer (``op_timeout_s``). Measured in ``docs/stores.md``,
    "The transports: one wait per connection".

    Between exchanges the reader drains whatever the server sends unasked (a notice, a parameter change,
    the server closing the connection) into libpq's buffer, so a readable socket does not spin the loop;
    a read that fails (the server went away) stops the watch, and the next exchange on the link fails
    as a dropped connection (the store retries it once on a fresh one). Use a link on the loop that
    connected it; :meth:`finish` from another thread hands the close to that loop."""

    __slots__ = ("_fd", "_loop", "_waiter", "_watching", "conn", "pgconn")

    def __init__(self, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self._loop = loop
        self._fd: int = self.pgconn.socket
        self._waiter: asyncio.Future[None] | None = None
        loop.add_reader(self._fd, self._readable)
        self._watching = True

    @property
    def closed(self) -> bool:
        """True once the connection is closed or known to be lost."""
        return not self._watching or bool(self.conn.closed)

    def _readable(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
            return
        try:  # unasked input between exchanges: into libpq's buffer (the next exchange parses it)
            self.pgconn.consume_input()
        except Exception:  # the server closed the connection: stop watching a dead socket
            self._unwatch()

    def _expire(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError())

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            if not self._loop.is_closed():
                self._loop.remove_reader(self._fd)

    async def exchange(self, query: bytes, op_timeout_s: float) -> Any:
        """Send ``query`` (one simple-query message), wait for all of its results (the whole exchange
        bounded by ``op_timeout_s``: ``TimeoutError``) and return the last one, checked by
        :func:`last_ok`. After a timeout, a cancellation or an error the link is unusable (the caller
        drops it)."""
        if not self._watching:
            raise psycopg().OperationalError("the connection to the server was lost")
        pg, loop = self.pgconn, self._loop
        pg.send_query(query)
        timer = loop.call_at(loop.time() + op_timeout_s, self._expire)
        try:
            if pg.flush():  # a query larger than the socket buffer: wait until it is all sent
                await self._flush()
            results: list[Any] = []
            while True:
                waiter = self._waiter = loop.create_future()
                await waiter
                pg.consume_input()
                while not pg.is_busy():
                    res = pg.get_result()
                    if res is None:
                        return last_ok(results)
                    results.append(res)
        finally:
            self._waiter = None
            timer.cancel()

    async def _flush(self) -> None:
        """Wait until the socket took the rest of the query (reading what arrives meanwhile, as libpq
        asks of a non-blocking sender)."""
        pg, loop, fd = self.pgconn, self._loop, self._fd
        while True:
            waiter = self._waiter = loop.create_future()
            loop.add_writer(fd, self._readable)
            try:
                await waiter
            finally:
                loop.remove_writer(fd)
            pg.consume_input()
            if not pg.flush():
                return

    def finish(self) -> None:
        """Close without awaiting (the pool dropping a broken or an idle link). From a thread other than
        the one running the link's loop, the close is handed to that loop."""
        loop = self._loop
        if self._watching and loop.is_running() and asyncio._get_running_loop() is not loop:
            loop.call_soon_threadsafe(self.finish)
            return
        self._unwatch()
        try:
            self.pgconn.finish()
        except Exception:  # pragma: no cover - already gone
            pass

    async def close(self) -> None:
        self._unwatch()
        await self.conn.close()


#: libpq's ``PGRES_FATAL_ERROR`` (``psycopg.pq.ExecStatus.FATAL_ERROR``).
_FATAL_ERROR = 7


def last_ok(results: Sequence[Any]) -> Any:
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
