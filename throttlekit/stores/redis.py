"""Redis stores: the transforms run atomically inside Redis by EVALSHA (SCRIPT LOAD on NOSCRIPT, once).

State layout and encodings are the upstream core's, so a Node ThrottleKit fleet, throttlekit-py's
RedisBackend and this package on one Redis share one limit per key. By default ``now_ms`` is the
``SERVER_TIME`` sentinel and each script reads Redis ``TIME``: a fleet has no clock skew.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio as aredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from .._errors import ScriptError, StoreError
from .._loader import Transform, load_manifest
from .base import EvalBinding

__all__ = ["AsyncRedisStore", "RedisStore"]


def _script_error(t: Transform, exc: ResponseError) -> ScriptError:
    return ScriptError(t.name, t.sha, str(exc))


def _replies(t: Transform, results: list[Any]) -> list[Sequence[Any]]:
    """A batch's replies, raising the first error reply (a script error or a transport error)."""
    for r in results:
        if isinstance(r, ResponseError):
            raise _script_error(t, r)
        if isinstance(r, Exception):
            raise StoreError(f"redis: {r}", r)
    return results


class _Scripts:
    def __init__(self) -> None:
        self.transforms = load_manifest()

    def get(self, name: str) -> Transform:
        try:
            return self.transforms[name]
        except KeyError:
            raise ScriptError(name, "", f"unknown transform {name!r}") from None


def _bulk(v: Any) -> bytes:
    """One RESP bulk string, encoding values as redis-py does (str(int), repr(float), UTF-8 text)."""
    b = v if isinstance(v, bytes) else (v if isinstance(v, str) else repr(v)).encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


def _evalsha_head(t: Transform, nargs: int) -> bytes:
    nkeys = len(t.keys)
    return b"*%d\r\n" % (3 + nkeys + nargs) + _bulk("EVALSHA") + _bulk(t.sha) + _bulk(nkeys)


class _Holder:
    """Returns a thread's dedicated connection to the pool when the thread's local state is dropped."""

    __slots__ = ("conn", "lean")

    def __init__(self, lean: _Lean, conn: Any) -> None:
        self.lean, self.conn = lean, conn

    def __del__(self) -> None:
        self.lean.give_back(self.conn)


class _Lean:
    """The hot path: one dedicated connection per thread, taken once from the client's own pool (so
    auth, TLS, database and timeouts are the client's), and EVALSHA commands packed from pre-encoded
    parts. It skips redis-py's per-command machinery, which costs more than the round trip itself on
    loopback (``tk bench`` shows the ratio). Falls back to reconnecting on the next call after an error.
    """

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.local = threading.local()
        self.held: set[Any] = set()
        self.lock = threading.Lock()

    def conn(self) -> Any:
        local = self.local
        c = getattr(local, "conn", None)
        if c is None or local.pid != os.getpid():
            c = self.pool.get_connection()
            local.conn, local.pid = c, os.getpid()
            # when the thread ends its thread-local state is dropped, and with it this holder, which
            # hands the connection back to the pool (short-lived threads must not leak connections)
            local.holder = _Holder(self, c)
            with self.lock:
                self.held.add(c)
        return c

    def give_back(self, c: Any) -> None:
        with self.lock:
            if c not in self.held:
                return
            self.held.discard(c)
        try:
            self.pool.release(c)
        except Exception:  # pragma: no cover - pool already closed
            c.disconnect()

    def call(self, payload: bytes) -> Any:
        c = self.conn()
        try:
            c.send_packed_command([payload], check_health=False)
            return c.read_response()
        except ResponseError:
            raise
        except BaseException:
            c.disconnect()
            raise

    def call_many(self, payload: bytes, n: int) -> list[Any]:
        """Send ``n`` packed commands at once and read ``n`` replies; error replies come back as values."""
        c = self.conn()
        out: list[Any] = []
        try:
            c.send_packed_command([payload], check_health=False)
            for _ in range(n):
                try:
                    out.append(c.read_response())
                except ResponseError as exc:
                    out.append(exc)
        except BaseException:
            c.disconnect()
            raise
        return out

    def close(self) -> None:
        with self.lock:
            held, self.held = self.held, set()
        for c in held:
            try:
                self.pool.release(c)
            except Exception:  # pragma: no cover - pool already gone
                c.disconnect()


class RedisStore:
    """Synchronous Redis store over a ``redis.Redis`` client (or a URL). Thread-safe (redis-py pools).

    ``prefix`` is the store-level key prefix. Connection failures raise :class:`StoreError` (with the
    driver's exception as ``store_error``); a script failure raises :class:`ScriptError`.
    """

    def __init__(
        self, client: redis.Redis | None = None, *, url: str | None = None, prefix: str = "", **kwargs: Any
    ) -> None:
        if client is None:
            client = redis.Redis.from_url(url or "redis://127.0.0.1:6379/0", **kwargs)
            self._owned = True
        else:
            self._owned = False
        self.client = client
        self._client: Any = client  # redis-py's command methods are untyped
        self.prefix = prefix
        self._scripts = _Scripts()
        self._closed = False
        pool = getattr(client, "connection_pool", None)
        # the lean path needs a plain pool of plain connections (not cluster, sentinel or async clients)
        self._lean = _Lean(pool) if type(pool) is redis.ConnectionPool else None

    def _call(self, t: Transform, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Any:
        if self._lean is not None:
            head = _evalsha_head(t, 1 + len(args))
            return self._lean.call(b"".join([head, *map(_bulk, keys), _bulk(now_ms), *map(_bulk, args)]))
        return self._client.execute_command("EVALSHA", t.sha, len(keys), *keys, now_ms, *args)

    def _run(self, t: Transform, call: Callable[[], Any]) -> Any:
        try:
            try:
                return call()
            except NoScriptError:
                self.client.script_load(t.source)
                return call()
        except ResponseError as exc:
            raise _script_error(t, exc) from exc
        except RedisError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc
        except OSError as exc:  # a socket error the driver did not wrap
            raise StoreError(f"redis: {exc}", exc) from exc

    def eval(self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Sequence[Any]:
        t = self._scripts.get(name)
        return self._run(t, lambda: self._call(t, keys, now_ms, args))  # type: ignore[no-any-return]

    inline = False

    def bind(self, name: str, params: Sequence[Any]) -> Callable[[str, float, float], Sequence[Any]]:
        """``(key, now_ms, cost) -> reply`` for a single-key transform with ARGV ``[now_ms, *params, cost]``,
        the constant parts of the command packed once (the limiter's hot path)."""
        t = self._scripts.get(name)
        lean = self._lean
        if lean is None:
            return lambda key, now, cost: self.eval(name, (key,), now, (*params, cost))
        head = _evalsha_head(t, len(params) + 2)
        mid = b"".join(map(_bulk, params))
        call, run = lean.call, self._run

        def runner(key: str, now: float, cost: float) -> Sequence[Any]:
            payload = b"".join((head, _bulk(key), _bulk(now), mid, _bulk(cost)))
            try:
                return call(payload)  # type: ignore[no-any-return]
            except (RedisError, OSError):
                return run(t, lambda: call(payload))  # type: ignore[no-any-return]

        return runner

    def eval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Sequence[Any]]:
        t = self._scripts.get(name)
        try:
            results = self._pipeline(t, keys, now_ms, args)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                self.client.script_load(t.source)
                again = self._pipeline(t, [keys[i] for i in missing], now_ms, args)
                for i, r in zip(missing, again):
                    results[i] = r
        except RedisError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc
        return _replies(t, results)

    def _pipeline(
        self, t: Transform, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Any]:
        if self._lean is not None:
            head = _evalsha_head(t, 1 + len(args))
            tail = _bulk(now_ms) + b"".join(map(_bulk, args))
            payload = b"".join(b"".join([head, *map(_bulk, ks), tail]) for ks in keys)
            return self._lean.call_many(payload, len(keys))
        pipe: Any = self.client.pipeline(transaction=False)
        for ks in keys:
            pipe.execute_command("EVALSHA", t.sha, len(ks), *ks, now_ms, *args)
        return pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

    def delete(self, key: str) -> None:
        try:
            self.client.delete(key)
        except RedisError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc

    def close(self) -> None:
        """Idempotent. Returns the per-thread connections; closes the client only if this store made it."""
        if not self._closed:
            self._closed = True
            if self._lean is not None:
                self._lean.close()
            if self._owned:
                self.client.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"


class AsyncRedisStore(EvalBinding):
    """The asyncio twin of :class:`RedisStore` over ``redis.asyncio.Redis``."""

    def __init__(
        self, client: aredis.Redis | None = None, *, url: str | None = None, prefix: str = "", **kwargs: Any
    ) -> None:
        if client is None:
            client = aredis.Redis.from_url(url or "redis://127.0.0.1:6379/0", **kwargs)
            self._owned = True
        else:
            self._owned = False
        self.client = client
        self._client: Any = client
        self.prefix = prefix
        self._scripts = _Scripts()
        self._closed = False

    async def aeval(
        self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]
    ) -> Sequence[Any]:
        t = self._scripts.get(name)
        client = self._client
        try:
            try:
                return await client.execute_command(  # type: ignore[no-any-return]
                    "EVALSHA", t.sha, len(keys), *keys, now_ms, *args
                )
            except NoScriptError:
                await client.script_load(t.source)
                return await client.execute_command(  # type: ignore[no-any-return]
                    "EVALSHA", t.sha, len(keys), *keys, now_ms, *args
                )
        except ResponseError as exc:
            raise _script_error(t, exc) from exc
        except RedisError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc

    async def aeval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Sequence[Any]]:
        t = self._scripts.get(name)
        try:
            results = await self._pipeline(t, keys, now_ms, args)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                await self.client.script_load(t.source)
                again = await self._pipeline(t, [keys[i] for i in missing], now_ms, args)
                for i, r in zip(missing, again):
                    results[i] = r
        except RedisError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc
        return _replies(t, results)

    async def _pipeline(
        self, t: Transform, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Any]:
        pipe: Any = self.client.pipeline(transaction=False)
        for ks in keys:
            pipe.execute_command("EVALSHA", t.sha, len(ks), *ks, now_ms, *args)
        return await pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

    async def aping(self) -> None:
        try:
            await self.client.ping()
        except RedisError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc

    async def adelete(self, key: str) -> None:
        try:
            await self.client.delete(key)
        except RedisError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc

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
