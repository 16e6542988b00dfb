"""Redis stores: the transforms run atomically inside Redis by EVALSHA (SCRIPT LOAD on NOSCRIPT, once).

State layout and encodings are the upstream core's, so a Node ThrottleKit fleet, throttlekit-py's
RedisBackend and this package on one Redis share one limit per key. By default ``now_ms`` is the
``SERVER_TIME`` sentinel and each script reads Redis ``TIME``: a fleet has no clock skew.

:class:`RedisStore` (sync) talks RESP over its own sockets (:mod:`._redisconn`), or through a redis-py
client it is given when that client is not a plain one (cluster, sentinel, TLS, fakeredis).
:class:`AsyncRedisStore` is the thin redis-py asyncio variant; the fast asyncio store is
:class:`~throttlekit.stores.PipelinedRedisStore`. All of them share one command path (:mod:`._resp`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis

from .._clock import SERVER_TIME
from .._errors import ScriptError, StoreError
from .._loader import Transform, load_manifest
from . import _resp
from ._redisconn import PENDING, ConnectionPool, RedisOptions, options_from_client, redis_options
from ._resp import ReplyError, evalsha_batch, evalsha_common, evalsha_packer, pack
from .base import BoundCall, EvalBinding, Last, Reply

__all__ = ["AsyncRedisStore", "RedisStore"]

_TRANSPORT = (OSError, hiredis.ProtocolError)


class _Scripts:
    def __init__(self) -> None:
        self.transforms = load_manifest()
        self._by_sha: dict[str, str] | None = None

    def source_of(self, sha: str) -> str | None:
        if self._by_sha is None:
            self._by_sha = {t.sha: t.source for t in self.transforms.values()}
        return self._by_sha.get(sha)

    def get(self, name: str) -> Transform:
        try:
            return self.transforms[name]
        except KeyError:
            raise ScriptError(name, "", f"unknown transform {name!r}") from None


def _evalsha(t: Transform, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> tuple[Any, ...]:
    return ("EVALSHA", t.sha, len(keys), *keys, now_ms, *args)


# A client offering only ``evalsha``/``eval`` (throttlekit-py's RedisClientLike) gets every command as
# one of those: a script is run by EVALSHA, or by EVAL when Redis lacks it (no SCRIPT LOAD needed), and
# the few other commands the stores send are wrapped in a one-line script.
_WRAPPED = {
    "DEL": ("return redis.call('DEL', KEYS[1])", 1),
    "PING": ("return redis.call('PING')", 0),
}


def _script_only(client: Any) -> bool:
    return not hasattr(client, "pipeline") and hasattr(client, "evalsha") and hasattr(client, "eval")


def _as_reply(exc: BaseException) -> Any:
    """A script-only client's exception as the reply it stands for (a ReplyError or a StoreError)."""
    import redis

    if isinstance(exc, redis.RedisError):
        return _resp.from_redis_py(exc)
    if isinstance(exc, (OSError, TimeoutError)):
        return StoreError(f"redis: {exc!r}", exc)
    text = str(exc)
    code = text.split(" ", 1)[0]
    return ReplyError(text if code.isupper() and code.isalpha() else f"ERR {type(exc).__name__}: {text}")


def _is_noscript(reply: Any) -> bool:
    return reply.__class__ is ReplyError and str(reply).startswith("NOSCRIPT")


def _script_call(scripts: _Scripts, cmd: tuple[Any, ...]) -> tuple[str, tuple[Any, ...], str | None]:
    """``(method, args, eval_source)`` for one command on a script-only client."""
    name = str(cmd[0]).upper()
    if name == "EVALSHA":
        return "evalsha", cmd[1:], scripts.source_of(cmd[1])
    if name == "SCRIPT":  # settle never needs it here (EVAL runs a missing script), answer the SHA
        return "", (), None
    wrapped = _WRAPPED.get(name)
    if wrapped is None:
        raise StoreError(f"redis: {name} cannot be sent through a client that only offers evalsha/eval")
    source, nkeys = wrapped
    return "eval", (source, nkeys, *cmd[1:]), None


class RedisStore:
    """Synchronous Redis store. Thread-safe: each call checks a connection out of a lock-free free list
    and back in (a thread never keeps one).

    Build it from a URL (``RedisStore(url="redis://host:6379/0?prefix=p")``, or :func:`throttlekit.from_url`)
    with the options of :data:`~throttlekit.stores._redisconn.REDIS_URL_OPTIONS` as query parameters or
    keywords, or from a ``redis.Redis`` client (a plain client's connection settings are reused for the
    store's own connections; any other client is called through redis-py). ``prefix`` is the store-level
    key prefix. Connection failures and "unavailable" replies (BUSY, OOM, LOADING, READONLY, ...) raise
    :class:`StoreError`; a script's own failure raises :class:`ScriptError`.
    """

    inline = False

    def __init__(
        self,
        client: Any = None,
        *,
        url: str | None = None,
        prefix: str = "",
        options: RedisOptions | None = None,
        **kwargs: Any,
    ) -> None:
        self._client = client
        self._owns_client = False
        if client is not None:
            opts = options_from_client(client)
            self._pool = ConnectionPool(opts) if opts is not None else None
            self.options = opts
        else:
            if options is None:
                options = redis_options(url or "redis://127.0.0.1:6379/0", **kwargs)
            self.options = options
            self._pool = ConnectionPool(options)
        self.prefix = prefix or (self.options.prefix if self.options is not None else "")
        self._scripts = _Scripts()
        self._closed = False

    @property
    def client(self) -> Any:
        """The redis-py client: the one given, or one made on first use with the store's options."""
        if self._client is None:
            assert self.options is not None
            self._client = self.options.redis_py_client()
            self._owns_client = True
        return self._client

    # -- transport ----------------------------------------------------------------------------------
    def _roundtrip(self, payload: bytes, n: int) -> list[Any]:
        """Send ``n`` packed commands in one write on a pooled connection; replies in order."""
        pool = self._pool
        assert pool is not None
        c = pool.get()
        try:
            replies = c.call_many(payload, n)
        except _TRANSPORT as exc:
            c.close()
            raise StoreError(f"redis: {exc!r} ({pool.options.address})", exc) from exc
        except BaseException:
            c.close()
            raise
        pool.put(c)
        return replies

    def _commands(self, cmds: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run commands (argument tuples) in one round trip; error replies come back as values."""
        if self._pool is not None:
            return self._roundtrip(b"".join(pack(*c) for c in cmds), len(cmds))
        if _script_only(self._client):
            return [self._script_command(c) for c in cmds]
        import redis

        try:
            pipe = self._client.pipeline(transaction=False)
            for c in cmds:
                pipe.execute_command(*c)
            results = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc
        except OSError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc
        return [_resp.from_redis_py(r) if isinstance(r, BaseException) else r for r in results]

    def _script_command(self, cmd: tuple[Any, ...]) -> Any:
        method, args, source = _script_call(self._scripts, cmd)
        if not method:
            return cmd[2] if len(cmd) > 2 else ""
        try:
            return getattr(self._client, method)(*args)
        except Exception as exc:
            reply = _as_reply(exc)
        if source is not None and _is_noscript(reply):
            try:
                return self._client.eval(source, *args[1:])
            except Exception as exc:
                return _as_reply(exc)
        return reply

    def _settle(
        self,
        t: Transform,
        replies: list[Any],
        keys: Sequence[Sequence[str]],
        now_ms: float,
        args: Sequence[Any],
    ) -> list[Any]:
        def serve(request: _resp.Request) -> Any:
            if request is _resp.LOAD:
                return self._commands([("SCRIPT", "LOAD", t.source)])[0]
            return self._commands([_evalsha(t, keys[i], now_ms, args) for i in request])

        return _resp.drive(_resp.settle(t, replies, keys), serve)

    # -- the store interface ------------------------------------------------------------------------
    def eval(self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Reply:
        t = self._scripts.get(name)
        (reply,) = self._commands([_evalsha(t, keys, now_ms, args)])
        if reply.__class__ is ReplyError or isinstance(reply, StoreError):
            return self._settle(t, [reply], (keys,), now_ms, args)[0]  # type: ignore[no-any-return]
        return reply  # type: ignore[no-any-return]

    def eval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Reply]:
        t = self._scripts.get(name)
        if self._pool is not None:  # replies are values or ReplyErrors: one C-level look at their types
            replies = self._roundtrip(evalsha_batch(t, keys, now_ms, args), len(keys))
            if ReplyError in set(map(type, replies)):
                return self._settle(t, replies, keys, now_ms, args)
            return replies
        replies = self._commands([_evalsha(t, ks, now_ms, args) for ks in keys])
        for r in replies:
            if r.__class__ is ReplyError or isinstance(r, StoreError):
                return self._settle(t, replies, keys, now_ms, args)
        return replies

    def bind(self, name: str, params: Sequence[Any], *, guarded: bool = True) -> BoundCall:
        """``(key, now_ms, cost) -> reply`` for a single-key transform with ARGV ``[now_ms, *params, cost]``,
        the constant parts of the command packed once (the limiter's hot path). Always guarded: Redis
        reports a script fault as an error reply, which becomes a :class:`ScriptError` here."""
        t = self._scripts.get(name)
        pool = self._pool
        fixed = tuple(params)
        if pool is None or len(t.argv) - 1 - len(fixed) != 1:  # no pool, or several per-call ARGV
            evaluate = self.eval
            return lambda key, now, *last: evaluate(name, (key,), now, (*fixed, *last))
        packed, common, server = evalsha_packer(t, fixed), evalsha_common(t, fixed), SERVER_TIME
        free = pool.free
        pop, append, max_idle = free.pop, free.append, pool.max_idle
        connect, settle = pool.get, self._settle

        def call(key: str, now_ms: float, cost: Last) -> Reply:
            if now_ms == server and cost == 1:  # the common call, as the packer frames it, inlined
                kb = key.encode()
                payload = common % (len(kb), kb)
            else:
                payload = packed(key, now_ms, cost)
            try:
                c = pop()
            except IndexError:
                c = connect()
            try:  # Connection.call, inlined: this is the hot path
                sock, reader = c.sock, c.reader
                sock.sendall(payload)
                reply = reader.gets()
                while reply is PENDING:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionResetError("connection closed by the server")
                    reader.feed(data)
                    reply = reader.gets()
            except (BlockingIOError, TimeoutError) as exc:  # the kernel's deadline; Python's over TLS
                c.close()
                raise StoreError(
                    f"redis: timed out: no reply within {pool.options.timeout:g} s ({pool.options.address})",
                    exc,
                ) from exc
            except _TRANSPORT as exc:
                c.close()
                raise StoreError(f"redis: {exc!r} ({pool.options.address})", exc) from exc
            except BaseException:
                c.close()
                raise
            if len(free) < max_idle:
                append(c)
            else:
                c.close()
            if reply.__class__ is ReplyError:
                return settle(t, [reply], ((key,),), now_ms, (*fixed, cost))[0]  # type: ignore[no-any-return]
            return reply  # type: ignore[no-any-return]

        return call

    def delete(self, key: str) -> None:
        (reply,) = self._commands([("DEL", key)])
        if reply.__class__ is ReplyError:
            raise StoreError(f"redis: DEL failed: {reply}")
        if isinstance(reply, StoreError):
            raise reply

    def close(self) -> None:
        """Idempotent. Closes the store's own connections (and a client it made, not one it was given)."""
        if not self._closed:
            self._closed = True
            if self._pool is not None:
                self._pool.close()
            if self._owns_client and self._client is not None:
                self._client.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.options.address if self.options is not None else type(self._client).__name__
        return f"RedisStore({where}, prefix={self.prefix!r})"


class AsyncRedisStore(EvalBinding):
    """The thin redis-py variant of the asyncio store, over a ``redis.asyncio.Redis`` client (or a URL):
    for clients the pipelined store cannot be (cluster, sentinel, fakeredis). One command per decision;
    :class:`~throttlekit.stores.PipelinedRedisStore` is the fast one. Same errors as :class:`RedisStore`."""

    def __init__(
        self, client: Any = None, *, url: str | None = None, prefix: str = "", **kwargs: Any
    ) -> None:
        if client is None:
            opts = redis_options(url or "redis://127.0.0.1:6379/0", **kwargs)
            client = opts.redis_py_client(asyncio=True)
            prefix = prefix or opts.prefix
            self._owned = True
        else:
            self._owned = False
        self.client = client
        self._client: Any = client
        self.prefix = prefix
        self._scripts = _Scripts()
        self._closed = False
        self._loop: Any = None

    async def _commands(self, cmds: Sequence[tuple[Any, ...]]) -> list[Any]:
        import asyncio

        import redis

        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                raise StoreError(
                    f"{self!r} is bound to the event loop it first ran on (a redis.asyncio client cannot "
                    "move between loops): create one per event loop, or use the pipelined store "
                    "(tk.from_url_async), which follows the running loop"
                )
            self._loop = loop
        if _script_only(self._client):
            return [await self._script_command(c) for c in cmds]
        try:
            pipe = self._client.pipeline(transaction=False)
            for c in cmds:
                pipe.execute_command(*c)
            results = await pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc
        except OSError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc
        return [_resp.from_redis_py(r) if isinstance(r, BaseException) else r for r in results]

    async def _script_command(self, cmd: tuple[Any, ...]) -> Any:
        method, args, source = _script_call(self._scripts, cmd)
        if not method:
            return cmd[2] if len(cmd) > 2 else ""
        try:
            return await getattr(self._client, method)(*args)
        except Exception as exc:
            reply = _as_reply(exc)
        if source is not None and _is_noscript(reply):
            try:
                return await self._client.eval(source, *args[1:])
            except Exception as exc:
                return _as_reply(exc)
        return reply

    async def aeval(self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Reply:
        return (await self.aeval_many(name, (keys,), now_ms, args))[0]

    async def aeval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Reply]:
        t = self._scripts.get(name)
        replies = await self._commands([_evalsha(t, ks, now_ms, args) for ks in keys])

        async def serve(request: _resp.Request) -> Any:
            if request is _resp.LOAD:
                return (await self._commands([("SCRIPT", "LOAD", t.source)]))[0]
            return await self._commands([_evalsha(t, keys[i], now_ms, args) for i in request])

        return await _resp.adrive(_resp.settle(t, replies, keys), serve)

    async def aping(self) -> None:
        (reply,) = await self._commands([("PING",)])
        if reply.__class__ is ReplyError:
            raise StoreError(f"redis: PING failed: {reply}")
        if isinstance(reply, StoreError):
            raise reply

    async def adelete(self, key: str) -> None:
        (reply,) = await self._commands([("DEL", key)])
        if reply.__class__ is ReplyError:
            raise StoreError(f"redis: DEL failed: {reply}")
        if isinstance(reply, StoreError):
            raise reply

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owned:
                await self.client.aclose()

    async def __aenter__(self) -> AsyncRedisStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncRedisStore(prefix={self.prefix!r})"
