"""Stores, chosen by URL scheme from one explicit registry.

==============  ==========================================  =========================
scheme          store                                       extra
==============  ==========================================  =========================
``memory://``   :class:`MemoryStore` (lupa, in-process)     (core)
``redis://``    :class:`RedisStore` (EVALSHA in Redis)      (core)
``rediss://``   :class:`RedisStore` over TLS                (core)
``postgres://`` :class:`PostgresStore` (advisory lock)      ``postgres`` (also ``postgresql://``)
``dynamodb://`` :class:`DynamoDBStore` (version CAS)        ``dynamodb``
==============  ==========================================  =========================

``memory://?max_keys=N`` bounds the keyspace; ``redis://host:port/db?prefix=P`` sets the key prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from .._errors import ConfigError
from .base import AsyncScriptStore, ScriptStore, join_prefix
from .memory import MemoryStore
from .pipelined import PipelinedRedisStore
from .redis import AsyncRedisStore, RedisStore

__all__ = [
    "STORES",
    "AsyncRedisStore",
    "AsyncScriptStore",
    "MemoryStore",
    "PipelinedRedisStore",
    "RedisStore",
    "ScriptStore",
    "from_url",
    "join_prefix",
]


def _query(url: str) -> tuple[Any, dict[str, str]]:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return parts, query


def _memory(url: str, **kwargs: Any) -> MemoryStore:
    _, q = _query(url)
    unknown = set(q) - {"max_keys", "prefix", "runtime"}
    if unknown:
        raise ConfigError(
            f"store URL {url!r}: unknown parameter(s) {sorted(unknown)}; allowed: max_keys, prefix, runtime"
        )
    if "max_keys" in q:
        try:
            kwargs["max_keys"] = int(q["max_keys"])
        except ValueError:
            raise ConfigError(
                f"store URL {url!r}: max_keys must be an integer, got {q['max_keys']!r}"
            ) from None
    if "runtime" in q:
        kwargs["runtime"] = q["runtime"]
    return MemoryStore(prefix=q.get("prefix", ""), **kwargs)


def _redis(url: str, **kwargs: Any) -> RedisStore:
    parts, q = _query(url)
    prefix = q.pop("prefix", "")
    rest = "&".join(f"{k}={v}" for k, v in q.items())
    clean = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
    return RedisStore(url=clean, prefix=prefix, **kwargs)


def _postgres(url: str, **kwargs: Any) -> Any:
    from .postgres import from_url as postgres_from_url

    return postgres_from_url(url, **kwargs)


def _dynamodb(url: str, **kwargs: Any) -> Any:
    from .dynamodb import from_url as dynamodb_from_url

    return dynamodb_from_url(url, **kwargs)


#: scheme -> factory(url, **kwargs). Adding a store = one module + one entry here.
STORES: dict[str, Callable[..., Any]] = {
    "memory": _memory,
    "redis": _redis,
    "rediss": _redis,
    "unix": _redis,
    "postgresql": _postgres,
    "postgres": _postgres,
    "dynamodb": _dynamodb,
}


def from_url(url: str, **kwargs: Any) -> Any:
    """Build a store from ``memory://``, ``redis://host:port/db`` and the other registered schemes."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    factory = STORES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in STORES)
        raise ConfigError(f"unknown store URL {url!r}: expected one of {known}")
    return factory(url, **kwargs)
