"""The Postgres store's transport: connecting (sync and asyncio), one simple-query exchange, errors.

:func:`exchange` / :func:`aexchange` send one query string (several statements) on a psycopg connection's
libpq handle, wait for all of its results, bounded by ``op_timeout_s``, and return the last one, raising
the server's error when a statement failed (:func:`last_ok`); psycopg's cursor layer is not involved (it
costs more client CPU than the round trip itself). What is sent and how replies are
read lives in :mod:`throttlekit.stores._pgsql`; pooling in :mod:`throttlekit.stores._pgpool`.

Errors: every failure becomes :class:`~throttlekit.StoreError` (:func:`store_error`), except in the
startup check, where an answer from the server (a wrong database, role, password, schema or table)
is a :class:`~throttlekit.ConfigError` (:func:`startup_error`). Passwords never appear in messages:
:func:`redact` is the only way a URL is printed.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any

from .._errors import ConfigError, StoreError

__all__ = [
    "INSTALL_HINT",
    "aconnect",
    "aexchange",
    "conn_kwargs",
    "connect",
    "exchange",
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


#: whether ``Connection.wait`` takes a timeout (psycopg >= 3.2); None until the first exchange asks
_WAIT_TIMEOUT: bool | None = None


def _wait_takes_timeout() -> bool:
    global generators, _WAIT_TIMEOUT, _WAIT_ASYNC
    if _WAIT_TIMEOUT is None:
        from psycopg import generators as module
        from psycopg import waiting

        generators = module
        if "timeout" in inspect.signature(waiting.wait_async).parameters:
            _WAIT_ASYNC = waiting.wait_async
        _WAIT_TIMEOUT = "timeout" in inspect.signature(psycopg().Connection.wait).parameters
    return _WAIT_TIMEOUT


#: ``psycopg.waiting.wait_async`` where it takes a deadline (psycopg >= 3.3), found by the first exchange
_WAIT_ASYNC: Any = None
#: how often a wait wakes up while nothing happens (psycopg's own ``AsyncConnection.wait`` interval)
_WAIT_INTERVAL = 0.1


#: ``psycopg.generators``, imported by the first :func:`_wait_takes_timeout` (psycopg is an extra).
generators: Any = None


def connect(url: str, kwargs: dict[str, Any]) -> Any:
    """A sync psycopg connection in autocommit (``connect_timeout`` bounds it). Raises psycopg errors."""
    return psycopg().Connection.connect(url, autocommit=True, **kwargs)


async def aconnect(url: str, kwargs: dict[str, Any], op_timeout_s: float) -> Any:
    """The asyncio twin of :func:`connect`."""
    return await asyncio.wait_for(
        psycopg().AsyncConnection.connect(url, autocommit=True, **kwargs), op_timeout_s
    )


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


def exchange(conn: Any, query: bytes, op_timeout_s: float) -> Any:
    """Send ``query`` (one simple-query message), wait for all of its results, bounded by ``op_timeout_s``
    (psycopg >= 3.2; older versions wait on the TCP keepalives), and return the last one, checked as by
    :func:`last_ok` (inline: this runs twice per decision)."""
    pgconn = conn.pgconn
    pgconn.send_query(query)
    if _WAIT_TIMEOUT or _wait_takes_timeout():
        results = conn.wait(generators.execute(pgconn), timeout=op_timeout_s)
    else:  # pragma: no cover
        results = conn.wait(generators.execute(pgconn))
    if results and results[-1].status != _FATAL_ERROR:
        return results[-1]
    return last_ok(results)


async def aexchange(conn: Any, query: bytes, op_timeout_s: float) -> Any:
    """The asyncio twin of :func:`exchange` (a timeout or cancellation leaves ``conn`` unusable: the
    caller drops it). The wait runs under psycopg's own deadline, not ``AsyncConnection.wait``: on a
    timeout or a cancellation that one first asks the server to cancel the query, then waits for the
    query to end, up to 5 s each, so a frozen peer held every decision ``op_timeout_s`` + 10 s (and a
    cancelled task as long)."""
    _wait_takes_timeout()
    pgconn = conn.pgconn
    pgconn.send_query(query)
    if _WAIT_ASYNC is not None:
        results = await _WAIT_ASYNC(
            generators.execute(pgconn), pgconn.socket, interval=_WAIT_INTERVAL, timeout=op_timeout_s
        )
        return last_ok(results)
    # psycopg 3.2, whose waits take no deadline: the task's own (psycopg's cancel attempt included)
    if _timeout is not None:  # pragma: no cover - Python 3.11+: no task of its own per exchange
        async with _timeout(op_timeout_s):
            return last_ok(await conn.wait(generators.execute(pgconn)))
    return last_ok(
        await asyncio.wait_for(conn.wait(generators.execute(pgconn)), op_timeout_s)
    )  # pragma: no cover


#: ``asyncio.timeout`` (Python 3.11+; it raises ``TimeoutError``, which is ``asyncio.TimeoutError`` there)
_timeout: Any = getattr(asyncio, "timeout", None)
