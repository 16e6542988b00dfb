"""Redis connection settings (parsed once, by redis-py's own URL parser) and the blocking connection.

:func:`redis_options` turns a ``redis://``, ``rediss://`` or ``unix://`` URL plus keyword options into a
:class:`RedisOptions`; every Redis store takes one (the factory builds it), so the db, ``prefix``,
credentials, TLS and timeouts mean the same thing on every entry point. :class:`Connection` is the sync
store's socket: TCP (or a Unix socket), optional TLS, the AUTH/SELECT handshake and every later reply,
each bounded by a deadline; replies are parsed by hiredis. :class:`ConnectionPool` is a lock-free free
list (``list.pop``/``list.append`` are atomic): a call checks a connection out and back in, so a thread
never keeps one. Timeouts and options are documented in ``docs/stores.md`` (Redis).
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import weakref
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import hiredis

from .._errors import ConfigError, StoreError
from ._resp import ReplyError, pack

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "PENDING",
    "REDIS_URL_OPTIONS",
    "Connection",
    "ConnectionPool",
    "RedisOptions",
    "open_socket",
    "redis_options",
]

#: What a connection's reader answers while a reply is incomplete (hiredis' ``notEnoughData``): an
#: object of its own, never equal to a reply.
PENDING: Any = object()

#: Seconds to open a connection (TCP connect and TLS handshake).
DEFAULT_CONNECT_TIMEOUT = 0.5
#: Seconds to wait for any reply, the AUTH/SELECT handshake's included.
DEFAULT_TIMEOUT = 1.0

#: Query parameters (and keyword options) a Redis store URL accepts; redis-py's names where it has one.
REDIS_URL_OPTIONS = (
    "db",
    "prefix",
    "socket_connect_timeout",
    "socket_timeout",
    "client_name",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
)
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


@dataclass(frozen=True)
class RedisOptions:
    """Where and how to reach one Redis: what every Redis store is built from."""

    scheme: str = "redis"
    host: str = "127.0.0.1"
    port: int = 6379
    path: str = ""  # unix:// socket path
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    prefix: str = ""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    timeout: float = DEFAULT_TIMEOUT
    client_name: str | None = None
    ssl_cert_reqs: str = "required"
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool | None = None

    @property
    def address(self) -> str:
        """``host:port/db`` (or ``unix:path/db``), without credentials: for messages."""
        where = f"unix:{self.path}" if self.scheme == "unix" else f"{self.host}:{self.port}"
        return f"{where}/{self.db}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``rediss://`` (system CAs unless ``ssl_ca_certs``), else None."""
        if self.scheme != "rediss":
            return None
        ctx = ssl.create_default_context(cafile=self.ssl_ca_certs)
        reqs = _CERT_REQS[self.ssl_cert_reqs]
        check = self.ssl_check_hostname if self.ssl_check_hostname is not None else reqs == ssl.CERT_REQUIRED
        ctx.check_hostname = check and reqs != ssl.CERT_NONE
        ctx.verify_mode = reqs
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return ctx

    def redis_py_client(self, *, asyncio: bool = False) -> Any:
        """A ``redis.Redis`` (or ``redis.asyncio.Redis``) client on these options with retries off: every
        wait is bounded once by ``socket_timeout``, as on the store's own connections (redis-py's default
        would retry a timed-out command up to ten times, with backoff)."""
        from redis.backoff import NoBackoff

        if asyncio:
            import redis.asyncio as aredis
            from redis.asyncio.retry import Retry as AsyncRetry

            return aredis.Redis(retry=AsyncRetry(NoBackoff(), 0), **self.redis_py_kwargs())
        import redis
        from redis.retry import Retry

        return redis.Redis(retry=Retry(NoBackoff(), 0), **self.redis_py_kwargs())

    def redis_py_kwargs(self) -> dict[str, Any]:
        """These options as keyword arguments of ``redis.Redis`` / ``redis.asyncio.Redis``; build a client
        with :meth:`redis_py_client`, which also turns redis-py's retries off."""
        kw: dict[str, Any] = {
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": self.timeout,
            "client_name": self.client_name,
        }
        if self.scheme == "unix":
            kw["unix_socket_path"] = self.path
            return kw
        kw.update(host=self.host, port=self.port)
        if self.scheme == "rediss":
            reqs = _CERT_REQS[self.ssl_cert_reqs]
            check = (
                self.ssl_check_hostname if self.ssl_check_hostname is not None else reqs == ssl.CERT_REQUIRED
            )
            kw.update(
                ssl=True,
                ssl_cert_reqs=self.ssl_cert_reqs,
                ssl_ca_certs=self.ssl_ca_certs,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
                ssl_check_hostname=check and reqs != ssl.CERT_NONE,
            )
        return kw

    def handshake(self) -> list[tuple[str, bytes]]:
        """``(command name, packed command)`` to send on every (re)connect: AUTH, SELECT, CLIENT SETNAME."""
        out: list[tuple[str, bytes]] = []
        if self.password is not None:
            args = (self.username, self.password) if self.username else (self.password,)
            out.append(("AUTH", pack("AUTH", *args)))
        if self.db:
            out.append(("SELECT", pack("SELECT", self.db)))
        if self.client_name:
            out.append(("CLIENT SETNAME", pack("CLIENT", "SETNAME", self.client_name)))
        return out


def _positive(url: str, name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = -1.0
    if not v > 0 or v == float("inf"):
        raise ConfigError(f"store URL {url!r}: {name} must be a positive number of seconds, got {value!r}")
    return v


def redis_options(url: str, **options: Any) -> RedisOptions:
    """Parse ``url`` (redis-py's parser) and merge keyword ``options`` (they win over the URL's query).

    Raises :class:`ConfigError` naming an unknown option and listing the allowed ones
    (:data:`REDIS_URL_OPTIONS`), or a bad value.
    """
    from redis.connection import parse_url

    shown = _redact(url)
    allowed = ", ".join(REDIS_URL_OPTIONS)
    query_names = {kv.split("=", 1)[0] for kv in urlsplit(url).query.split("&") if kv}
    for name in sorted(query_names | set(options)):
        if name not in REDIS_URL_OPTIONS:
            raise ConfigError(f"store URL {shown!r}: unknown option {name!r}; allowed: {allowed}")
    try:
        parsed: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigError(f"store URL {shown!r}: {exc}") from None
    parts = urlsplit(url)
    path_db = parts.path.strip("/")
    if parts.scheme != "unix" and path_db and not path_db.isdigit():
        raise ConfigError(f"store URL {shown!r}: the database must be a number, got {path_db!r}")
    for name, value in options.items():
        if value is not None:
            parsed[name] = value
    kw: dict[str, Any] = {"scheme": parts.scheme}
    if parts.scheme == "unix":
        if not parsed.get("path"):
            raise ConfigError(f"store URL {shown!r}: expected unix:///path/to/redis.sock")
        kw["path"] = parsed["path"]
    else:
        kw["host"] = parsed.get("host") or "127.0.0.1"
        kw["port"] = int(parsed.get("port") or 6379)
    db = parsed.get("db", 0)
    try:
        kw["db"] = int(db)
    except (TypeError, ValueError):
        raise ConfigError(f"store URL {shown!r}: db must be an integer, got {db!r}") from None
    if kw["db"] < 0:
        raise ConfigError(f"store URL {shown!r}: db must be >= 0, got {db!r}")
    for name in ("username", "password", "client_name", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if parsed.get(name) is not None:
            kw[name] = str(parsed[name])
    prefix = parsed.get("prefix", "")
    if not isinstance(prefix, str):
        raise ConfigError(f"store URL {shown!r}: prefix must be a string, got {prefix!r}")
    kw["prefix"] = prefix
    if "socket_connect_timeout" in parsed:
        kw["connect_timeout"] = _positive(shown, "socket_connect_timeout", parsed["socket_connect_timeout"])
    if "socket_timeout" in parsed:
        kw["timeout"] = _positive(shown, "socket_timeout", parsed["socket_timeout"])
    if "ssl_cert_reqs" in parsed:
        reqs = str(parsed["ssl_cert_reqs"]).lower()
        if reqs not in _CERT_REQS:
            raise ConfigError(
                f"store URL {shown!r}: ssl_cert_reqs must be one of none, optional, required, got {reqs!r}"
            )
        kw["ssl_cert_reqs"] = reqs
    if "ssl_check_hostname" in parsed:
        v = parsed["ssl_check_hostname"]
        kw["ssl_check_hostname"] = v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
    return RedisOptions(**kw)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()


def options_from_client(client: Any) -> RedisOptions | None:
    """The options of a plain redis-py client (TCP or Unix socket, password or ACL user, no TLS and no
    credential provider), so the store can open its own connections to the same Redis; None otherwise
    (cluster, sentinel, TLS or a fake client keep using the client itself)."""
    import redis

    pool = getattr(client, "connection_pool", None)
    if type(pool) is not redis.ConnectionPool:
        return None
    cls = pool.connection_class
    kw = pool.connection_kwargs
    if cls not in (redis.Connection, redis.UnixDomainSocketConnection) or kw.get("credential_provider"):
        return None
    base = RedisOptions(
        scheme="unix" if cls is redis.UnixDomainSocketConnection else "redis",
        host=kw.get("host") or "127.0.0.1",
        port=int(kw.get("port") or 6379),
        path=kw.get("path") or "",
        db=int(kw.get("db") or 0),
        username=kw.get("username"),
        password=kw.get("password"),
        client_name=kw.get("client_name"),
    )
    if kw.get("socket_connect_timeout"):
        base = replace(base, connect_timeout=float(kw["socket_connect_timeout"]))
    if kw.get("socket_timeout"):
        base = replace(base, timeout=float(kw["socket_timeout"]))
    return base


def _kernel_timeout(sock: socket.socket, seconds: float) -> None:
    """Bound every send and receive by ``seconds`` in the kernel (``SO_SNDTIMEO``/``SO_RCVTIMEO``) on a
    blocking socket: a round trip is two system calls, where a Python socket timeout polls before each
    (measured by ``tk bench``). A wait that expires raises ``BlockingIOError`` (an ``OSError``). Where the
    options are missing, Python's own socket timeout bounds the waits instead. Not for a TLS socket (see
    :func:`open_socket`)."""
    whole = int(seconds)
    tv = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    try:
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    except (OSError, AttributeError, struct.error):  # pragma: no cover - platforms without them
        sock.settimeout(seconds)


def open_socket(opts: RedisOptions) -> socket.socket:
    """A blocking socket to the Redis of ``opts`` (TCP or a Unix socket, TLS for ``rediss://``): connect
    and TLS handshake bounded by ``connect_timeout``, then every send and receive by ``timeout``
    (:func:`_kernel_timeout`). No command is sent. Raises :class:`StoreError` when it cannot connect.

    A TLS socket gets Python's own socket timeout instead (a wait that expires raises ``TimeoutError``):
    on a blocking ``SSLSocket`` CPython's ``ssl`` module answers the kernel's expired wait (OpenSSL's
    ``SSL_ERROR_WANT_READ``) by reading again, so a frozen peer would hold ``recv`` forever (measured: a
    SIGSTOPped TLS redis-server held a store's check past 5 s with a 0.3 s timeout)."""
    ctx: ssl.SSLContext | None = None
    try:
        if opts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(opts.connect_timeout)
            try:
                sock.connect(opts.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((opts.host, opts.port), timeout=opts.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ctx = opts.ssl_context()
            if ctx is not None:
                try:
                    sock = ctx.wrap_socket(sock, server_hostname=opts.host)
                except BaseException:
                    sock.close()
                    raise
    except (OSError, ssl.SSLError) as exc:
        raise StoreError(f"redis: cannot connect to {opts.address}: {exc}", exc) from exc
    if ctx is None:
        _kernel_timeout(sock, opts.timeout)
    else:
        sock.settimeout(opts.timeout)
    return sock


class Connection:
    """One blocking connection: every step bounded (connect and TLS by ``connect_timeout``; the
    handshake and each reply by ``timeout``). Raises :class:`StoreError` on any failure."""

    __slots__ = ("reader", "sock")

    def __init__(self, opts: RedisOptions) -> None:
        self.sock = open_socket(opts)
        self.reader = hiredis.Reader(notEnoughData=PENDING)
        for name, cmd in opts.handshake():
            try:
                reply = self.call(cmd)
            except (OSError, hiredis.ProtocolError) as exc:
                self.close()
                raise StoreError(
                    f"redis: no reply to {name} from {opts.address} within {opts.timeout:g} s: {exc!r}", exc
                ) from exc
            if reply.__class__ is ReplyError:
                self.close()
                raise StoreError(f"redis: {name} failed on {opts.address}: {reply}")

    def call(self, payload: bytes) -> Any:
        """Send one command, return its reply (an error reply is returned as a ``ReplyError``)."""
        sock, reader = self.sock, self.reader
        sock.sendall(payload)
        reply = reader.gets()
        while reply is PENDING:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, TimeoutError):  # the kernel's deadline; Python's over TLS
                raise TimeoutError(f"timed out: no reply within {_timeout(sock)}") from None
            if not data:
                raise ConnectionResetError("connection closed by the server")
            reader.feed(data)
            reply = reader.gets()
        return reply

    def call_many(self, payload: bytes, n: int) -> list[Any]:
        """Send ``n`` commands in one write, return their ``n`` replies in order (each read's replies
        are taken by one C-level loop: ``iter(gets, PENDING)``; the sentinel is an object of its own,
        so no reply compares equal to it). More replies than commands means the stream is out of step:
        a ``hiredis.ProtocolError``, and the caller drops the connection."""
        sock, reader = self.sock, self.reader
        sock.sendall(payload)
        out: list[Any] = []
        extend, gets = out.extend, reader.gets
        while True:
            extend(iter(gets, PENDING))
            if len(out) >= n:
                if len(out) > n:
                    raise hiredis.ProtocolError(f"{len(out)} replies to {n} commands")
                return out
            try:
                data = sock.recv(65536)
            except (BlockingIOError, TimeoutError):  # the kernel's deadline; Python's over TLS
                raise TimeoutError(f"timed out: no reply within {_timeout(sock)}") from None
            if not data:
                raise ConnectionResetError("connection closed by the server")
            reader.feed(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:  # pragma: no cover - already gone
            pass

    def __del__(self) -> None:  # an idle connection of a store that was never closed
        sock = getattr(self, "sock", None)
        if sock is not None:
            sock.close()


def _timeout(sock: socket.socket) -> str:
    """The wait that expired: Python's timeout on a TLS socket, else the kernel's receive deadline."""
    if sock.gettimeout() is not None:
        return f"{sock.gettimeout():g} s"
    try:
        sec, usec = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
        return f"{sec + usec / 1e6:g} s"
    except (OSError, struct.error):  # pragma: no cover
        return "the timeout"


_pools: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()


def _after_fork() -> None:  # a child must not share its parent's sockets
    for pool in list(_pools):
        pool.free.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class ConnectionPool:
    """A free list of idle connections: ``get`` pops one (or opens one), ``put`` returns it. Lock-free
    (``list.pop`` and ``list.append`` are atomic), so a call holds a connection only while it runs and a
    thread that ends holds none. At most ``max_idle`` idle connections are kept."""

    def __init__(self, opts: RedisOptions, max_idle: int = 64) -> None:
        self.options = opts
        self.free: list[Connection] = []
        self.max_idle = max_idle
        self.closed = False
        _pools.add(self)

    def get(self) -> Connection:
        try:
            return self.free.pop()
        except IndexError:
            return Connection(self.options)

    def put(self, conn: Connection) -> None:
        if len(self.free) < self.max_idle and not self.closed:
            self.free.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close the idle connections; a connection checked in later is closed then."""
        self.closed = True
        free = self.free
        while free:
            try:
                free.pop().close()
            except IndexError:  # pragma: no cover - emptied by another thread
                break
