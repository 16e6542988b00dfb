"""A pipelining Redis connection for asyncio hot paths (RESP over asyncio, parsed by hiredis): the
server's Redis transport, and what ``AsyncLimiter(..., store="redis://...")`` uses.

redis-py spends far more CPU per command than Redis spends running a GCRA script, so the server
talks to Redis through this small client instead: one connection, every command of a loop tick packed
into one write, replies matched to callers in order (Redis answers a connection strictly in order, so
batches need not wait for each other). :class:`PipelinedRedisStore` is an async script store with the
same contract as :class:`~throttlekit.AsyncRedisStore`: EVALSHA, SCRIPT LOAD and one retry on
NOSCRIPT, :class:`~throttlekit.StoreError` for transport failures (refused, reset, or no reply within
``timeout`` seconds), :class:`~throttlekit.ScriptError` for a script's own error.

``redis://``, ``rediss://`` (TLS, verified with the system's CA store) and ``unix://`` URLs.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis

from .._errors import ConfigError, ScriptError, StoreError
from .._loader import Transform, load_manifest
from .base import EvalBinding

__all__ = ["PipelinedRedisStore"]

_pack: Any = hiredis.pack_command  # its stub types the argument as a 1-tuple
_ReplyError = hiredis.ReplyError


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: PipelinedRedisStore) -> None:
        self.owner = owner
        self.reader = hiredis.Reader()
        self.waiters: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiters = self.waiters
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiters:  # a reply nobody asked for: the stream is out of step, drop the connection
                self.fail(StoreError("redis: unexpected reply"))
                return
            fut = waiters.popleft()[0]
            if not fut.done():
                fut.set_result(reply)

    def fail(self, error: StoreError) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()
        while self.waiters:
            fut = self.waiters.popleft()[0]
            if not fut.done():
                fut.set_exception(error)
        self.owner._forget(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(StoreError(f"redis: connection lost ({exc or 'closed by server'})", exc))


class PipelinedRedisStore(EvalBinding):
    """Async script store over one pipelined connection to ``url`` (``redis://[:password@]host:port/db``
    or ``unix:///path?db=N``). ``prefix`` is the store-level key prefix. Connects lazily and again
    after a failure; ``connect_timeout`` and ``timeout`` are seconds. Use it from one event loop."""

    def __init__(
        self, url: str, *, prefix: str = "", connect_timeout: float = 0.5, timeout: float = 1.0
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"PipelinedRedisStore takes redis://, rediss:// or unix:// URLs, got {url!r}")
        self.url = url
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._parts = parts
        self._transforms = load_manifest()
        self._conn: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._out: list[bytes] = []
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    # -- connection ---------------------------------------------------------------------------------
    def _setup_commands(self) -> list[tuple[Any, ...]]:
        p = self._parts
        cmds: list[tuple[Any, ...]] = []
        if p.password is not None:
            user = unquote(p.username) if p.username else None
            cmds.append(("AUTH", user, unquote(p.password)) if user else ("AUTH", unquote(p.password)))
        db = (
            p.path.strip("/")
            if p.scheme != "unix"
            else dict(q.split("=", 1) for q in p.query.split("&") if "=" in q).get("db", "")
        )
        if db and db != "0":
            cmds.append(("SELECT", db))
        return cmds

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        p = self._parts
        try:
            if p.scheme == "unix":
                coro = loop.create_unix_connection(lambda: _Protocol(self), p.path)
            else:
                tls = ssl.create_default_context() if p.scheme == "rediss" else None
                host = p.hostname or "127.0.0.1"
                coro = loop.create_connection(lambda: _Protocol(self), host, p.port or 6379, ssl=tls)
            _, proto = await asyncio.wait_for(coro, self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise StoreError(
                f"redis: cannot connect to {p.hostname or p.path}:{p.port or 6379}: {exc!r}", exc
            ) from exc
        for cmd in self._setup_commands():
            reply = await self._roundtrip(proto, _pack(cmd))
            if isinstance(reply, _ReplyError):
                proto.fail(StoreError(f"redis: {cmd[0]} failed: {reply}"))
                raise StoreError(f"redis: {cmd[0]} failed: {reply}")
        return proto

    async def _roundtrip(self, proto: _Protocol, packed: bytes) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        proto.waiters.append((fut, asyncio.get_running_loop().time()))
        assert proto.transport is not None
        proto.transport.write(packed)
        return await fut

    async def _connection(self) -> _Protocol:
        if self._closed:
            raise StoreError("redis: store is closed")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            try:
                self._conn = await asyncio.shield(self._connecting)
            finally:
                self._connecting = None
            return self._conn
        return await asyncio.shield(self._connecting)

    def _forget(self, proto: _Protocol) -> None:
        if self._conn is proto:
            self._conn = None
            self._out = []  # its unsent commands: their callers were failed with the connection

    # -- sending ------------------------------------------------------------------------------------
    def _flush(self) -> None:
        conn, out = self._conn, self._out
        self._out = []
        if conn is None or conn.lost or conn.transport is None:
            return  # their waiters were failed with the connection
        conn.transport.write(b"".join(out))
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(self.timeout / 2, self._watch)

    def _watch(self) -> None:
        """Abort the connection when the oldest command has waited longer than ``timeout``."""
        self._watchdog = None
        conn = self._conn
        if conn is None or not conn.waiters:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - conn.waiters[0][1] > self.timeout:
            conn.fail(StoreError(f"redis: no reply within {self.timeout:g} s"))
            return
        self._watchdog = loop.call_later(self.timeout / 2, self._watch)

    async def _send(self, packed: bytes) -> Any:
        conn = self._conn
        if conn is None or conn.lost:
            conn = await self._connection()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        conn.waiters.append((fut, loop.time()))
        if not self._out:
            loop.call_soon(self._flush)
        self._out.append(packed)
        return await fut

    # -- the store interface ------------------------------------------------------------------------
    def _transform(self, name: str) -> Transform:
        try:
            return self._transforms[name]
        except KeyError:
            raise ScriptError(name, "", f"unknown transform {name!r}") from None

    async def aeval(self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Any:
        t = self._transform(name)
        packed = _pack(("EVALSHA", t.sha, len(keys), *keys, now_ms, *args))
        reply = await self._send(packed)
        if reply.__class__ is _ReplyError:
            if str(reply).startswith("NOSCRIPT"):
                loaded = await self._send(_pack(("SCRIPT", "LOAD", t.source)))
                if isinstance(loaded, _ReplyError):
                    raise ScriptError(t.name, t.sha, str(loaded))
                reply = await self._send(packed)
            if isinstance(reply, _ReplyError):
                raise ScriptError(t.name, t.sha, str(reply))
        return reply

    async def aeval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Sequence[Any]]:
        """Every key set in the same write (queued in one tick); replies in input order."""
        return list(await asyncio.gather(*(self.aeval(name, ks, now_ms, args) for ks in keys)))

    async def adelete(self, key: str) -> None:
        reply = await self._send(_pack(("DEL", key)))
        if isinstance(reply, _ReplyError):
            raise StoreError(f"redis: DEL failed: {reply}")

    async def ping(self) -> bool:
        """True when Redis answers PING (raises :class:`StoreError` otherwise)."""
        return bool(await self._send(_pack(("PING",))) == b"PONG")

    async def aping(self) -> None:
        """Returns when Redis answers PING; raises :class:`StoreError` otherwise."""
        reply = await self._send(_pack(("PING",)))
        if isinstance(reply, _ReplyError):
            raise StoreError(f"redis: PING failed: {reply}")

    async def aclose(self) -> None:
        """Close the connection (idempotent); commands in flight fail with StoreError."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    def __repr__(self) -> str:
        return f"PipelinedRedisStore({self.url!r}, prefix={self.prefix!r})"
