"""The store interface: a ``ScriptStore`` runs a named Lua transform atomically against its keys.

Every store is a context manager with an idempotent ``close()``. Keys are full keys (the store's own
``prefix`` is applied by the limiter, as ``"<store prefix>:<limiter prefix>:<key>"``, each segment only
when non-empty). A missing key is never an error: the transform sees Redis' "nil" and starts fresh.
Expiry belongs to the store: transforms set TTLs (``PX``/``PEXPIRE``) and the store enforces them.

The limiters, meters, two-tier limiter and server are typed against these protocols only. A store's fast
path lives behind :meth:`ScriptStore.bind` / :meth:`AsyncScriptStore.abind`; a store without one mixes in
:class:`EvalBinding`, which binds through ``eval``/``aeval``. See ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "AsyncBoundCall",
    "AsyncScriptStore",
    "BoundCall",
    "BoundedStore",
    "EvalBinding",
    "Last",
    "Reply",
    "ScriptStore",
    "join_prefix",
]

#: A transform's reply items, in the order of the manifest's ``reply`` names (integers as Redis
#: converts them; a decision's ``allowed`` is 1 or 0, or a bool on the memory store's fast path).
Reply = Sequence[Any]
#: The last ARGV of a bound call: a cost (a number), or text where the transform takes text there (the
#: concurrency guard's release ticket; bytes as Redis returned it).
Last = float | str | bytes
#: ``(full_key, now_ms, cost) -> reply`` for a single-key transform with ARGV ``[now_ms, *params, cost]``.
BoundCall = Callable[[str, float, Last], Reply]
#: The awaitable twin of :data:`BoundCall`.
AsyncBoundCall = Callable[[str, float, Last], Awaitable[Reply]]


def join_prefix(*segments: str) -> str:
    """``"a:b:"`` for the non-empty segments (``""`` when all are empty): prepend to a key."""
    parts = [s for s in segments if s]
    return ":".join(parts) + ":" if parts else ""


@runtime_checkable
class ScriptStore(Protocol):
    """A synchronous store. Implementations must be thread-safe.

    ``eval(name, keys, now_ms, args)`` runs transform ``name`` with ``KEYS = keys`` and
    ``ARGV = [now_ms, *args]`` atomically and returns the reply items. ``now_ms`` may be
    :data:`throttlekit.SERVER_TIME` (-1): the store's clock decides. ``eval_many`` runs one transform for
    many key sets at one ``now_ms`` in one round trip and returns replies in input order.
    ``bind(name, params)`` returns a ready :data:`BoundCall` for a single-key transform whose ARGV is
    ``[now_ms, *params, cost]``: the hot path, with everything constant prepared once. The call raises
    the package's errors; with ``guarded=False`` a store may let a script fault (a bug in a transform,
    never a decision or an outage) leave as its runtime's own exception, which the caller converts with
    :func:`~throttlekit._errors.as_script_error` (the memory store then skips a ``pcall`` per call).
    When ``params`` fixes fewer ARGV (a transform whose per-policy constants come first and several
    per-request values last, e.g. ``wfe_check``), the call takes them all: ``(key, now_ms, *per_request)``.
    ``inline`` is True when calls do no I/O (the memory store): an event loop may call them directly.
    """

    prefix: str
    inline: bool

    def eval(self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Reply: ...

    def eval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Reply]: ...

    def bind(self, name: str, params: Sequence[Any], *, guarded: bool = True) -> BoundCall: ...

    def delete(self, key: str) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncScriptStore(Protocol):
    """The asyncio twin of :class:`ScriptStore` (same semantics, awaitable methods).

    ``aping()`` is the startup check: it returns when the store is reachable and usable, and raises
    :class:`~throttlekit.StoreError` when it cannot be reached or :class:`~throttlekit.ConfigError` when it
    answers but is misconfigured (wrong database, role, table or credentials), saying what is wrong.
    """

    prefix: str
    inline: bool

    async def aeval(self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Reply: ...

    async def aeval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Reply]: ...

    def abind(self, name: str, params: Sequence[Any]) -> AsyncBoundCall: ...

    async def adelete(self, key: str) -> None: ...

    async def aping(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BoundedStore(Protocol):
    """A store with a key bound that it enforces by eviction (the memory store). ``stats()`` returns at
    least ``keys``, ``max_keys`` and ``evictions`` (live keys evicted at the bound since creation)."""

    def stats(self) -> dict[str, int]: ...


class EvalBinding:
    """``bind``/``abind`` through ``eval``/``aeval``, for stores without a faster path of their own."""

    inline = False

    def bind(self, name: str, params: Sequence[Any], *, guarded: bool = True) -> BoundCall:
        evaluate: Callable[..., Reply] = self.eval  # type: ignore[attr-defined]
        fixed = tuple(params)

        def call(key: str, now_ms: float, *last: Last) -> Reply:
            return evaluate(name, (key,), now_ms, (*fixed, *last))

        return call

    def abind(self, name: str, params: Sequence[Any]) -> AsyncBoundCall:
        evaluate: Callable[..., Awaitable[Reply]] = self.aeval  # type: ignore[attr-defined]
        fixed = tuple(params)

        async def call(key: str, now_ms: float, *last: Last) -> Reply:
            return await evaluate(name, (key,), now_ms, (*fixed, *last))

        return call
