"""Coalesce concurrent Redis script calls into one pipeline per event-loop tick.

One redis.asyncio EVALSHA costs far more client CPU than the script costs Redis, and a busy server has
many decisions in flight at once. :class:`CoalescingRedisStore` queues every ``aeval`` made during one
loop iteration and sends them as a single non-transactional pipeline when the loop next runs its
callbacks; each caller awaits its own future. Scripts stay atomic one by one (a pipeline is not a
transaction, and no decision needs two scripts to be atomic together).

It is an :class:`~throttlekit.stores.AsyncScriptStore`, so :class:`~throttlekit.AsyncLimiter` runs over
it unchanged. Errors keep the store's contract: a transport failure fails every call of the batch with
:class:`~throttlekit.StoreError`; a script error fails only its own call with
:class:`~throttlekit.ScriptError`; ``NOSCRIPT`` (after a Redis restart or ``SCRIPT FLUSH``) loads the
script and retries those calls once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError, RedisError, ResponseError

from .._errors import ScriptError, StoreError
from .._loader import Transform, load_manifest
from ..stores import AsyncRedisStore

__all__ = ["CoalescingRedisStore"]

_Call = tuple[Transform, Sequence[str], float, Sequence[Any], "asyncio.Future[Any]"]


class CoalescingRedisStore:
    """An async store over an :class:`~throttlekit.AsyncRedisStore` that batches calls per loop tick.

    ``max_batch`` caps one pipeline (a larger burst is split across several pipelines sent at once).
    Use it from one event loop. Closing it closes the wrapped store.
    """

    def __init__(self, store: AsyncRedisStore, *, max_batch: int = 256) -> None:
        self.store = store
        self.prefix = store.prefix
        self.client = store.client
        self.max_batch = max_batch
        self._transforms = load_manifest()
        self._pending: list[_Call] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        #: Pipelines sent and calls carried (for the benchmark and tests).
        self.pipelines = 0
        self.calls = 0

    def _transform(self, name: str) -> Transform:
        try:
            return self._transforms[name]
        except KeyError:
            raise ScriptError(name, "", f"unknown transform {name!r}") from None

    def aeval(
        self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        """Queue one script call; the returned future resolves to its reply (awaitable)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((self._transform(name), keys, now_ms, args, fut))
        return fut

    async def aeval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Sequence[Any]]:
        """Every key set in the same pipeline (they are queued in one tick), replies in input order."""
        futures = [self.aeval(name, ks, now_ms, args) for ks in keys]
        return list(await asyncio.gather(*futures))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        assert self._loop is not None
        for i in range(0, len(pending), self.max_batch):
            task = self._loop.create_task(self._send(pending[i : i + self.max_batch]))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _pipeline(self, calls: Sequence[_Call]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for t, keys, now, args, _ in calls:
            pipe.execute_command("EVALSHA", t.sha, len(keys), *keys, now, *args)
        return await pipe.execute(raise_on_error=False)

    async def _send(self, calls: list[_Call]) -> None:
        self.pipelines += 1
        self.calls += len(calls)
        try:
            results = await self._pipeline(calls)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                for t in {calls[i][0].name: calls[i][0] for i in missing}.values():
                    await self.client.script_load(t.source)
                again = await self._pipeline([calls[i] for i in missing])
                for i, r in zip(missing, again):
                    results[i] = r
        except (RedisError, OSError) as exc:
            error = StoreError(f"redis: {exc}", exc)
            for *_, fut in calls:
                if not fut.done():
                    fut.set_exception(error)
            return
        except BaseException as exc:  # cancellation at shutdown: never leave a caller waiting
            for *_, fut in calls:
                if not fut.done():
                    fut.cancel()
            if isinstance(exc, Exception):
                return
            raise
        for (t, *_, fut), r in zip(calls, results):
            if fut.done():
                continue
            if isinstance(r, ResponseError):
                fut.set_exception(ScriptError(t.name, t.sha, str(r)))
            elif isinstance(r, Exception):
                fut.set_exception(StoreError(f"redis: {r}", r))
            else:
                fut.set_result(r)

    async def adelete(self, key: str) -> None:
        await self.store.adelete(key)

    async def aclose(self) -> None:
        """Wait for the pipelines in flight, then close the wrapped store (idempotent)."""
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        await self.store.aclose()

    def __repr__(self) -> str:
        return f"CoalescingRedisStore({self.store!r}, max_batch={self.max_batch})"
