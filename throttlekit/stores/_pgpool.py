"""Minimal connection pools for the Postgres store: lazy, bounded, fail-fast.

Why not psycopg_pool: while the server is down its pool keeps reconnecting in background threads and
``getconn`` waits for its full timeout, so every decision during an outage would take that long. Here a
caller that needs a connection opens it itself (``connect_timeout`` bounds that; a refused connection
fails in microseconds), idle connections are reused LIFO, and a broken one is simply dropped. No
threads: the sync pool is a condition variable, the async one a semaphore. The sync pool's common case
(an idle connection out, a healthy one back) takes no lock: ``list.pop`` and ``list.append`` are atomic,
and a release notifies only when a caller waits, which counts itself before its last look at the list.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from .._errors import StoreError

__all__ = ["AsyncConn", "AsyncPool", "Conn", "Pool"]


class Conn(Protocol):
    """What :class:`Pool` needs of a connection (``_pgconn.Link``): drop it at once."""

    def finish(self) -> None: ...


class AsyncConn(Conn, Protocol):
    """What :class:`AsyncPool` needs of a connection (``_pgconn.AsyncLink``)."""

    @property
    def closed(self) -> bool: ...

    async def close(self) -> None: ...


S = TypeVar("S", bound=Conn)
C = TypeVar("C", bound=AsyncConn)


class Pool(Generic[S]):
    """At most ``size`` connections; ``acquire`` waits up to ``timeout_s`` when all are busy."""

    def __init__(self, connect: Callable[[], S], size: int, timeout_s: float) -> None:
        self._connect = connect
        self.size = size
        self.timeout_s = timeout_s
        self._idle: list[S] = []
        self._open = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = 0  # callers in _cond.wait: release notifies only when someone waits
        self._closed = False

    def acquire(self) -> tuple[S, bool]:
        """(connection, fresh). Raises ``StoreError`` when the pool stays exhausted or connecting fails."""
        if not self._closed:  # the common case first: an idle connection, no lock, clock or condition
            try:
                return self._idle.pop(), False  # atomic: a list's pop and append need no lock of ours
            except IndexError:
                pass
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while True:
                if self._closed:
                    raise StoreError("postgres store is closed")
                try:
                    return self._idle.pop(), False  # (a lock-free acquire may take it first)
                except IndexError:
                    pass
                if self._open < self.size:
                    self._open += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreError(
                        f"postgres: all {self.size} pooled connections busy for {self.timeout_s} s"
                    )
                self._waiting += 1
                try:
                    if not self._idle:  # a release that appended before the count above did not notify
                        self._cond.wait(left)
                finally:
                    self._waiting -= 1
        try:
            return self._connect(), True
        except BaseException:
            with self._cond:
                self._open -= 1
                if self._waiting:
                    self._cond.notify()
            raise

    def release(self, conn: S, *, broken: bool) -> None:
        """Return ``conn`` after use; ``broken`` (any failure on it) closes it instead. A connection that
        completed its last exchange is open (psycopg raises on a lost one, and the caller says broken)."""
        if not (broken or self._closed):  # the common case: back to the idle list
            self._idle.append(conn)
            if self._waiting:  # read after the append: a waiter counts itself, then re-checks the idle
                with self._cond:  # list before it waits (under the lock), so no wake-up is lost
                    self._cond.notify()
            if self._closed:  # closed meanwhile: the close may have drained the list before the append
                self.discard_idle()
            return
        with self._lock:
            self._open -= 1
            conn.finish()
            if self._waiting:
                self._cond.notify()

    def discard_idle(self) -> None:
        """Drop every idle connection (after a server restart they are all dead). Pops them one by one
        (the list itself stays: ``acquire`` and ``release`` use it without the lock)."""
        idle = []
        with self._cond:
            while True:
                try:
                    idle.append(self._idle.pop())
                except IndexError:
                    break
            self._open -= len(idle)
            self._cond.notify_all()
        for c in idle:
            c.finish()

    def close(self) -> None:
        with self._cond:
            self._closed = True
        self.discard_idle()


class AsyncPool(Generic[C]):
    """The asyncio twin of :class:`Pool` (bound to the loop it is used on), over connections ``C``."""

    def __init__(self, connect: Callable[[], Awaitable[C]], size: int, timeout_s: float) -> None:
        self._connect = connect
        self.size = size
        self.timeout_s = timeout_s
        self._idle: list[C] = []
        self._sem = asyncio.Semaphore(size)
        self._closed = False

    async def acquire(self) -> tuple[C, bool]:
        if self._closed:
            raise StoreError("postgres store is closed")
        try:
            if self._sem.locked():  # wait, bounded (a free semaphore is taken at once, without a timer)
                await asyncio.wait_for(self._sem.acquire(), self.timeout_s)
            else:
                await self._sem.acquire()
        except asyncio.TimeoutError:
            raise StoreError(
                f"postgres: all {self.size} pooled connections busy for {self.timeout_s} s"
            ) from None
        if self._idle:
            return self._idle.pop(), False
        try:
            return await self._connect(), True
        except BaseException:
            self._sem.release()
            raise

    def release(self, conn: C, *, broken: bool) -> None:
        if broken or self._closed or conn.closed:
            conn.finish()
        else:
            self._idle.append(conn)
        self._sem.release()

    def discard_idle(self) -> None:
        idle, self._idle = self._idle, []
        for c in idle:
            c.finish()

    def abandon(self) -> None:
        self._closed = True
        self.discard_idle()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for c in idle:
            try:
                await c.close()
            except Exception:  # pragma: no cover
                c.finish()
