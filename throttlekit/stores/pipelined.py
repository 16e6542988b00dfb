"""A pipelining Redis connection for asyncio hot paths (RESP over asyncio, parsed by hiredis): the
server's Redis transport, and what ``AsyncLimiter(..., store="redis://...")`` uses.

redis-py spends far more CPU per command than Redis spends running a GCRA script, so the server
talks to Redis through this small client instead: one connection, every command of a loop tick packed
into one write, replies matched to callers in order (Redis answers a connection strictly in order, so
batches need not wait for each other). A batch (``aeval_many``) is one write and one future.
Framing, error classification and EVALSHA-or-load are the shared ones (:mod:`._resp`); settings come
from :func:`~throttlekit.stores._redisconn.redis_options` (the factory's parser).

Every step is bounded: connect (and TLS) by ``connect_timeout``, the AUTH/SELECT handshake and every
reply by ``timeout``; a failure is a :class:`~throttlekit.StoreError` and the next call reconnects. The
store follows the running event loop: used under a new loop (``asyncio.run`` twice) it drops the old
loop's connection and connects again; used from two loops running at once it raises at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .._errors import ConfigError, ScriptError, StoreError
from .._loader import Transform, load_manifest
from . import _resp
from ._redisconn import RedisOptions, redis_options
from ._resp import ReplyError, evalsha_batch, evalsha_packer, pack
from .base import AsyncBoundCall, Last, Reply

__all__ = ["PipelinedRedisStore"]


def _drop(transport: asyncio.Transport) -> None:
    """Abort a transport, also one whose event loop is closed already (``asyncio.run`` returned):
    ``abort`` cannot schedule the close on a closed loop, so the socket is closed here."""
    try:
        transport.abort()
    except RuntimeError:
        sock = getattr(transport, "_sock", None)  # asyncio's socket transports keep their socket there
        if sock is not None:
            sock.close()
            transport._sock = None  # type: ignore[attr-defined]


class _Batch:
    """The sink of ``n`` consecutive replies: one future resolved with the list."""

    __slots__ = ("fut", "n", "replies")

    def __init__(self, fut: asyncio.Future[list[Any]], n: int) -> None:
        self.fut, self.n = fut, n
        self.replies: list[Any] = []


#: Error replies of the connection setup that mean "reachable but misconfigured" (for ``aping``).
_MISCONFIGURED = ("WRONGPASS", "NOAUTH", "NOPERM", "invalid password", "DB index is out of range")


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: PipelinedRedisStore) -> None:
        import hiredis

        self.owner = owner
        self.reader = hiredis.Reader()
        #: (future or batch, time queued): Redis answers in order, so the head gets the next reply
        self.waiters: deque[tuple[Any, float]] = deque()
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
            sink = waiters[0][0]
            if sink.__class__ is _Batch:
                sink.replies.append(reply)
                if len(sink.replies) < sink.n:
                    continue
                waiters.popleft()
                if not sink.fut.done():
                    sink.fut.set_result(sink.replies)
            else:
                waiters.popleft()
                if not sink.done():
                    sink.set_result(reply)

    def fail(self, error: StoreError) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()
        while self.waiters:
            sink = self.waiters.popleft()[0]
            fut = sink.fut if sink.__class__ is _Batch else sink
            if not fut.done():
                fut.set_exception(error)
        self.owner._forget(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(StoreError(f"redis: connection lost ({exc or 'closed by server'})", exc))


class PipelinedRedisStore:
    """Async script store over one pipelined connection. ``url`` is a ``redis://``, ``rediss://`` or
    ``unix://`` URL (options as for every Redis store, see ``docs/stores.md``) or parsed
    :class:`~throttlekit.stores._redisconn.RedisOptions`. ``prefix`` is the store-level key prefix (default:
    the URL's). ``connect_timeout`` and ``timeout`` are seconds (defaults: the URL's, else 0.5 and 1.0).
    Connects lazily and again after a failure."""

    inline = False

    def __init__(
        self,
        url: str | RedisOptions = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "",
        connect_timeout: float | None = None,
        timeout: float | None = None,
    ) -> None:
        if isinstance(url, RedisOptions):
            opts = replace(
                url,
                connect_timeout=connect_timeout or url.connect_timeout,
                timeout=timeout or url.timeout,
            )
        else:
            if not isinstance(url, str) or url.split("://", 1)[0] not in ("redis", "rediss", "unix"):
                raise ConfigError(
                    f"PipelinedRedisStore takes redis://, rediss:// or unix:// URLs, got {url!r}"
                )
            opts = redis_options(url, socket_connect_timeout=connect_timeout, socket_timeout=timeout)
        self.options = opts
        self.url = url if isinstance(url, str) else opts.address
        self.prefix = prefix or opts.prefix
        self.connect_timeout = opts.connect_timeout
        self.timeout = opts.timeout
        self._transforms = load_manifest()
        self._conn: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out: list[bytes] = []
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    # -- connection ---------------------------------------------------------------------------------
    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        o = self.options
        try:
            if o.scheme == "unix":
                coro = loop.create_unix_connection(lambda: _Protocol(self), o.path)
            else:
                coro = loop.create_connection(lambda: _Protocol(self), o.host, o.port, ssl=o.ssl_context())
            _, proto = await asyncio.wait_for(coro, o.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise StoreError(f"redis: cannot connect to {o.address}: {exc!r}", exc) from exc
        for name, cmd in o.handshake():
            try:
                reply = await asyncio.wait_for(self._roundtrip(proto, cmd), o.timeout)
            except asyncio.TimeoutError as exc:
                error = StoreError(f"redis: no reply to {name} from {o.address} within {o.timeout:g} s", exc)
                proto.fail(error)
                raise error from exc
            if reply.__class__ is ReplyError:
                error = StoreError(f"redis: {name} failed on {o.address}: {reply}")
                proto.fail(error)
                raise error
        return proto

    async def _roundtrip(self, proto: _Protocol, packed: bytes) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        proto.waiters.append((fut, loop.time()))
        assert proto.transport is not None
        proto.transport.write(packed)
        return await fut

    def _follow_loop(self) -> None:
        """Bind to the running loop; a new loop (the old one closed or stopped) starts afresh."""
        loop = asyncio.get_running_loop()
        old = self._loop
        if old is loop:
            return
        if old is not None and old.is_running() and not old.is_closed():
            raise StoreError(
                f"{self!r} is in use by another running event loop; create one store per event loop"
            )
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None:
            _drop(conn.transport)
        self._connecting, self._out, self._watchdog, self._loop = None, [], None, loop

    async def _connection(self) -> _Protocol:
        if self._closed:
            raise StoreError("redis: store is closed")
        self._follow_loop()
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
            conn.fail(StoreError(f"redis: no reply within {self.timeout:g} s ({self.options.address})"))
            return
        self._watchdog = loop.call_later(self.timeout / 2, self._watch)

    async def _send(self, packed: bytes) -> Any:
        conn = self._conn
        if conn is None or conn.lost or self._loop is not asyncio.get_running_loop():
            conn = await self._connection()
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[Any] = loop.create_future()
        conn.waiters.append((fut, loop.time()))
        if not self._out:
            loop.call_soon(self._flush)
        self._out.append(packed)
        return await fut

    async def _send_many(self, packed: bytes, n: int) -> list[Any]:
        """``n`` commands in one write; one future for their replies."""
        conn = self._conn
        if conn is None or conn.lost or self._loop is not asyncio.get_running_loop():
            conn = await self._connection()
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[list[Any]] = loop.create_future()
        conn.waiters.append((_Batch(fut, n), loop.time()))
        if not self._out:
            loop.call_soon(self._flush)
        self._out.append(packed)
        return await fut

    async def _settle(
        self,
        t: Transform,
        replies: list[Any],
        keys: Sequence[Sequence[str]],
        now_ms: float,
        args: Sequence[Any],
    ) -> list[Any]:
        async def serve(request: _resp.Request) -> Any:
            if request is _resp.LOAD:
                return await self._send(pack("SCRIPT", "LOAD", t.source))
            payload = b"".join(pack("EVALSHA", t.sha, len(keys[i]), *keys[i], now_ms, *args) for i in request)
            return await self._send_many(payload, len(request))

        return await _resp.adrive(_resp.settle(t, replies, keys), serve)

    # -- the store interface ------------------------------------------------------------------------
    def _transform(self, name: str) -> Transform:
        try:
            return self._transforms[name]
        except KeyError:
            raise ScriptError(name, "", f"unknown transform {name!r}") from None

    async def aeval(self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Reply:
        t = self._transform(name)
        reply = await self._send(pack("EVALSHA", t.sha, len(keys), *keys, now_ms, *args))
        if reply.__class__ is ReplyError:
            return (await self._settle(t, [reply], (keys,), now_ms, args))[0]  # type: ignore[no-any-return]
        return reply  # type: ignore[no-any-return]

    async def aeval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Reply]:
        """Every key set in one write, one future for the replies; replies in input order."""
        t = self._transform(name)
        if not keys:
            return []
        replies = await self._send_many(evalsha_batch(t, keys, now_ms, args), len(keys))
        for r in replies:
            if r.__class__ is ReplyError:
                return await self._settle(t, replies, keys, now_ms, args)
        return replies

    def abind(self, name: str, params: Sequence[Any]) -> AsyncBoundCall:
        """``(key, now_ms, cost) -> awaitable reply``, the command's constant parts packed once."""
        t = self._transform(name)
        fixed = tuple(params)
        if len(t.argv) - 1 - len(fixed) != 1:  # several per-call ARGV: no pre-packed tail
            evaluate = self.aeval

            async def call_tail(key: str, now_ms: float, *last: Any) -> Reply:
                return await evaluate(name, (key,), now_ms, (*fixed, *last))

            return call_tail
        packed = evalsha_packer(t, fixed)
        send, settle = self._send, self._settle

        async def call(key: str, now_ms: float, cost: Last) -> Reply:
            reply = await send(packed(key, now_ms, cost))
            if reply.__class__ is ReplyError:
                return (await settle(t, [reply], ((key,),), now_ms, (*fixed, cost)))[0]  # type: ignore[no-any-return]
            return reply  # type: ignore[no-any-return]

        return call

    async def adelete(self, key: str) -> None:
        reply = await self._send(pack("DEL", key))
        if reply.__class__ is ReplyError:
            raise StoreError(f"redis: DEL failed: {reply}")

    async def ping(self) -> bool:
        """True when Redis answers PING (raises :class:`StoreError` otherwise)."""
        await self.aping()
        return True

    async def aping(self) -> None:
        """Returns when Redis answers PING. Raises :class:`ConfigError` when Redis answers but refuses the
        connection's setup (wrong password or user, no permission, a database that does not exist), and
        :class:`StoreError` when it cannot be reached."""
        try:
            reply = await self._send(pack("PING"))
        except StoreError as exc:
            text = str(exc)
            if any(code in text for code in _MISCONFIGURED):
                raise ConfigError(f"redis at {self._where()}: {text.removeprefix('redis: ')}") from exc
            raise
        if reply.__class__ is ReplyError:
            if any(code in str(reply) for code in _MISCONFIGURED):
                raise ConfigError(f"redis at {self._where()}: PING refused: {reply}")
            raise StoreError(f"redis: PING failed: {reply}")

    def _where(self) -> str:
        return self.options.address

    async def aclose(self) -> None:
        """Close the connection (idempotent); commands in flight fail with StoreError."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None:
            # abort, not close: no TLS close_notify exchange left pending when the loop ends right after
            _drop(conn.transport)

    def __repr__(self) -> str:
        return f"PipelinedRedisStore({self.options.address!r}, prefix={self.prefix!r})"
