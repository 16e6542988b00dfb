"""The embedded memory store: the Lua transforms under lupa, state in a bounded Lua keyspace."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._clock import SERVER_TIME, Clock, SystemClock
from .._loader import load_manifest
from .._lupa import LuaEngine, unpack_reply
from .base import AsyncBoundCall, BoundCall, Last, Reply

__all__ = ["DEFAULT_MAX_KEYS", "MemoryStore"]

#: The default key bound (worst-case bytes per strategy at this bound: docs/stores.md, README).
DEFAULT_MAX_KEYS = 1_000_000


class MemoryStore:
    """In-process store running the same Lua bytes as Redis, through lupa (Lua 5.1).

    ``clock`` measures TTLs and answers the ``SERVER_TIME`` sentinel (default: the system clock).
    ``runtime`` is ``"luajit"`` (default where available) or ``"lua51"`` (PUC Lua 5.1, as Redis).
    ``max_keys`` bounds the keyspace (default :data:`DEFAULT_MAX_KEYS`): at the bound a new key reclaims
    expired keys first, then evicts the least recently used (CLOCK, an approximate LRU; see
    ``docs/stores.md`` for the bytes per key of each strategy); ``stats()`` counts evictions. Thread-safe: each decision is one call into the Lua runtime,
    which lupa serialises; a batch holds ``lock`` so no other call interleaves. Per process: two processes never share it.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_keys: int = DEFAULT_MAX_KEYS,
        prefix: str = "",
        runtime: str | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.prefix = prefix
        self.engine = LuaEngine(list(load_manifest().values()), max_keys=max_keys, runtime=runtime)
        self.lock = self.engine.lock
        self._closed = False

    #: calls do no I/O: an event loop may call the synchronous methods directly
    inline = True

    def bind(self, name: str, params: Sequence[Any], *, guarded: bool = True) -> BoundCall:
        """The fast path: a private copy of single-key transform ``name`` with ``params`` fixed, so one
        call ``(key, now_ms, cost) -> reply`` (the manifest's reply items) is one crossing into Lua;
        on the system clock under LuaJIT the Lua function itself (it reads the wall clock in Lua).
        ``now_ms`` may be ``SERVER_TIME``: this store's clock decides. Raises :class:`ScriptError`; with
        ``guarded=False`` a script fault is lupa's ``LuaError`` (see :meth:`ScriptStore.bind`)."""
        run, walled = self.engine.bind(name, params, wall=type(self.clock) is SystemClock, guarded=guarded)
        if walled:
            return run  # type: ignore[no-any-return]
        clock_now = self.clock.now_ms
        if len(load_manifest()[name].argv) - 1 - len(params) > 1:  # several per-call ARGV (see base.py)

            def call_tail(key: str, now_ms: float, *tail: Last) -> Reply:
                return run(clock_now(), key, now_ms, *tail)  # type: ignore[no-any-return]

            return call_tail

        def call(key: str, now_ms: float, cost: Last) -> Reply:
            return run(clock_now(), key, now_ms, cost)  # type: ignore[no-any-return]

        return call

    def abind(self, name: str, params: Sequence[Any]) -> AsyncBoundCall:
        call: Callable[..., Reply] = self.bind(name, params)

        async def acall(key: str, now_ms: float, *tail: Last) -> Reply:
            return call(key, now_ms, *tail)

        return acall

    async def aping(self) -> None:
        """Always reachable (in-process)."""

    def stats(self) -> dict[str, int]:
        """Operator counters: ``keys`` held, ``max_keys``, ``evictions`` (live keys evicted at the bound,
        least recently used first) and ``expired`` (keys dropped once their TTL passed)."""
        return self.engine.stats()

    @property
    def evictions(self) -> int:
        """Live keys evicted at ``max_keys`` since the store was created."""
        return self.stats()["evictions"]

    def eval(self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Sequence[Any]:
        t = self.clock.now_ms()
        out = self.engine.runner(name)(t, *keys, t if now_ms == SERVER_TIME else now_ms, *args)
        return unpack_reply(out)

    def eval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Sequence[Any]]:
        t = self.clock.now_ms()
        now = t if now_ms == SERVER_TIME else now_ms
        run = self.engine.runner(name)
        with self.lock:  # the batch is one unit: nothing interleaves between its decisions
            outs = [run(t, *ks, now, *args) for ks in keys]
        return [unpack_reply(o) for o in outs]

    async def aeval(
        self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]
    ) -> Sequence[Any]:
        return self.eval(name, keys, now_ms, args)

    async def aeval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Sequence[Any]]:
        return self.eval_many(name, keys, now_ms, args)

    def delete(self, key: str) -> None:
        self.engine.delete(self.clock.now_ms(), key)

    async def adelete(self, key: str) -> None:
        self.delete(key)

    def dump(self, key: str) -> tuple[str, Any, int | None] | None:
        """Raw state of one key (kind, value, deadline) for debugging and tests."""
        return self.engine.dump(self.clock.now_ms(), key)

    def key_count(self) -> int:
        return self.engine.key_count()

    def sweep(self) -> int:
        """Drop expired keys now; returns the live key count."""
        return self.engine.sweep(self.clock.now_ms())

    def flush(self) -> None:
        self.engine.flush()

    def close(self) -> None:
        """Idempotent; the keyspace is dropped."""
        if not self._closed:
            self._closed = True
            self.engine.flush()

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MemoryStore(max_keys={self.engine.max_keys}, runtime={self.engine.runtime!r}, clock={self.clock!r})"
