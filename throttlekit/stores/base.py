"""The store interface: a ``ScriptStore`` runs a named Lua transform atomically against its keys.

Every store is a context manager with an idempotent ``close()``. Keys are full keys (the store's own
``prefix`` is applied by the limiter, as ``"<store prefix>:<limiter prefix>:<key>"``, each segment only
when non-empty). A missing key is never an error: the transform sees Redis' "nil" and starts fresh.
Expiry belongs to the store: transforms set TTLs (``PX``/``PEXPIRE``) and the store enforces them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["AsyncScriptStore", "ScriptStore", "join_prefix"]


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
    """

    prefix: str

    def eval(self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]) -> Sequence[Any]: ...

    def eval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Sequence[Any]]: ...

    def delete(self, key: str) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncScriptStore(Protocol):
    """The asyncio twin of :class:`ScriptStore` (same semantics, awaitable methods)."""

    prefix: str

    async def aeval(
        self, name: str, keys: Sequence[str], now_ms: float, args: Sequence[Any]
    ) -> Sequence[Any]: ...

    async def aeval_many(
        self, name: str, keys: Sequence[Sequence[str]], now_ms: float, args: Sequence[Any]
    ) -> list[Sequence[Any]]: ...

    async def adelete(self, key: str) -> None: ...

    async def aclose(self) -> None: ...
