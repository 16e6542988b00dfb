"""Stores, chosen by URL scheme from one explicit registry (:mod:`._factory`).

==============  ==========================================  =========================
scheme          store                                       extra
==============  ==========================================  =========================
``memory://``   :class:`MemoryStore` (lupa, in-process)     (core)
``redis://``    :class:`RedisStore` (EVALSHA in Redis)      (core)
``rediss://``   :class:`RedisStore` over TLS                (core)
``unix://``     :class:`RedisStore` over a Unix socket      (core)
``postgres://`` :class:`PostgresStore` (advisory lock)      ``postgres`` (also ``postgresql://``)
``dynamodb://`` :class:`DynamoDBStore` (version CAS)        ``dynamodb``
==============  ==========================================  =========================

:func:`from_url` gives the synchronous store, :func:`from_url_async` the asyncio one (for Redis, the
:class:`PipelinedRedisStore`). ``memory://?max_keys=N`` bounds the keyspace;
``redis://[user:password@]host:port/db?prefix=P&socket_timeout=S`` (see ``docs/stores.md``).
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

from ._factory import STORES, open_async, open_store, open_sync, resolve_async, resolve_sync, store_from_flags
from .base import AsyncScriptStore, ScriptStore, join_prefix
from .memory import MemoryStore

if TYPE_CHECKING:
    from .pipelined import PipelinedRedisStore
    from .redis import AsyncRedisStore, RedisStore

#: Redis stores load on first use (PEP 562): the memory store never imports redis or hiredis.
_LAZY = {"PipelinedRedisStore": "pipelined", "AsyncRedisStore": "redis", "RedisStore": "redis"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "STORES",
    "AsyncRedisStore",
    "AsyncScriptStore",
    "MemoryStore",
    "PipelinedRedisStore",
    "RedisStore",
    "ScriptStore",
    "from_url",
    "from_url_async",
    "join_prefix",
    "open_async",
    "open_store",
    "open_sync",
    "resolve_async",
    "resolve_sync",
    "store_from_flags",
]


def from_url(url: str, **options: Any) -> Any:
    """The synchronous store for ``memory://``, ``redis://host:port/db`` and the other registered schemes
    (keyword options: ``clock`` and the URL's own option names)."""
    return open_store(url, asynchronous=False, **options)


def from_url_async(url: str, **options: Any) -> Any:
    """The asyncio store for ``url`` (a ``redis://`` URL gives a :class:`PipelinedRedisStore`)."""
    return open_store(url, asynchronous=True, **options)
