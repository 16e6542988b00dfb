"""Redis stores: the transforms run atomically inside Redis by EVALSHA (SCRIPT LOAD on NOSCRIPT, once).

State layout and encodings are the upstream core's, so a Node ThrottleKit fleet, throttlekit-py's
RedisBackend and this package on one Redis share one limit per key. By default ``now_ms`` is the
``SERVER_TIME`` sentinel and each script reads Redis ``TIME``: a fleet has no clock skew.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from .._errors import ScriptError, StoreError
from .._loader import Transform, load_manifest

__all__ = ["AsyncRedisStore", "RedisStore"]


def _script_error(t: Transform, exc: ResponseError) -> ScriptError:
    return ScriptError(t.name, t.sha, str(exc))


class _Scripts:
    def __init__(self) -> None:
        self.transforms = load_manifest()

    def get(self, name: str) -> Transform:
        try:
            return self.transforms[name]
        except KeyError:
            raise ScriptError(name, "", f"unknown transform {name!r}") from None


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

    def _call(self, t: Transform, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Any:
        return self._client.execute_command("EVALSHA", t.sha, len(keys), *keys, now_ms, *args)

    def eval(self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Sequence[Any]:
        t = self._scripts.get(name)
        try:
            try:
                return self._call(t, keys, now_ms, args)  # type: ignore[no-any-return]
            except NoScriptError:
                self.client.script_load(t.source)
                return self._call(t, keys, now_ms, args)  # type: ignore[no-any-return]
        except ResponseError as exc:
            raise _script_error(t, exc) from exc
        except RedisError as exc:
            raise StoreError(f"redis: {exc}", exc) from exc

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
        for r in results:
            if isinstance(r, ResponseError):
                raise _script_error(t, r)
            if isinstance(r, Exception):
                raise StoreError(f"redis: {r}", r)
        return results

    def _pipeline(
        self, t: Transform, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Any]:
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
        """Idempotent. Closes the client only if this store created it."""
        if not self._closed:
            self._closed = True
            if self._owned:
                self.client.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"


class AsyncRedisStore:
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
        for r in results:
            if isinstance(r, ResponseError):
                raise _script_error(t, r)
            if isinstance(r, Exception):
                raise StoreError(f"redis: {r}", r)
        return results

    async def _pipeline(
        self, t: Transform, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Any]:
        pipe: Any = self.client.pipeline(transaction=False)
        for ks in keys:
            pipe.execute_command("EVALSHA", t.sha, len(ks), *ks, now_ms, *args)
        return await pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

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
