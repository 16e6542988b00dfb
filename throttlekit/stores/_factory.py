"""The store factory: one place turns a URL (or the server's store flags) into a sync or an async store.

``open_store(url, asynchronous=..., clock=None, **options)`` looks the scheme up in :data:`STORES` and
builds the store; :func:`open_sync` / :func:`open_async` are its typed faces, :func:`resolve_sync` /
:func:`resolve_async` accept what a limiter's ``store=`` accepts (None, a URL or a store object), and
:func:`store_from_flags` is what ``throttlekit-server`` calls for ``--store/--redis/--postgres-*/--dynamodb-*``.
Every entry point (``from_url``, ``Limiter``, ``AsyncLimiter``, ``TwoTierLimiter``, the meters, the
server, ``tk lua verify``, ``tk bench``) comes through here, so a URL option means the same everywhere:

==============  ===========================================  =====================================
scheme          sync store / async store                     options (query or keyword)
==============  ===========================================  =====================================
``memory://``   :class:`MemoryStore` (both)                  ``max_keys``, ``prefix``, ``runtime``
``redis://``    :class:`RedisStore` / ``PipelinedRedisStore``      ``REDIS_URL_OPTIONS``
``rediss://``   the same over TLS                             the same
``unix://``     the same over a Unix socket                   the same
``postgres://`` :class:`PostgresStore` (both; also           its ``from_url``
                ``postgresql://``)
``dynamodb://`` :class:`DynamoDBStore` (both)                its ``from_url``
==============  ===========================================  =====================================

Adding a store: one module with a ``from_url``, one entry in :data:`STORES`. An unknown option is a
:class:`~throttlekit.ConfigError` naming it and listing the allowed ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .._clock import Clock
from .._errors import ConfigError
from .base import AsyncScriptStore, ScriptStore

__all__ = [
    "STORES",
    "StoreKind",
    "dynamodb_url",
    "open_async",
    "open_store",
    "open_sync",
    "resolve_async",
    "resolve_sync",
    "store_from_flags",
]

_MEMORY_OPTIONS = ("max_keys", "prefix", "runtime")


def _memory(url: str, asynchronous: bool, clock: Clock | None, **options: Any) -> Any:
    from .memory import MemoryStore

    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}
    unknown = sorted((set(query) | set(options)) - set(_MEMORY_OPTIONS))
    if unknown:
        raise ConfigError(
            f"store URL {url!r}: unknown option {unknown[0]!r}; allowed: {', '.join(_MEMORY_OPTIONS)}"
        )
    kw: dict[str, Any] = {**query, **options}
    if "max_keys" in kw:
        try:
            kw["max_keys"] = int(kw["max_keys"])
        except (TypeError, ValueError):
            raise ConfigError(
                f"store URL {url!r}: max_keys must be an integer, got {kw['max_keys']!r}"
            ) from None
    return MemoryStore(clock=clock, **kw)


def _redis(url: str, asynchronous: bool, clock: Clock | None, **options: Any) -> Any:
    from ._redisconn import redis_options

    opts = redis_options(url, **options)  # Redis TIME is the store's clock: ``clock`` is the limiter's
    if asynchronous:
        from .pipelined import PipelinedRedisStore

        return PipelinedRedisStore(opts)
    from .redis import RedisStore

    return RedisStore(options=opts)


def _postgres(url: str, asynchronous: bool, clock: Clock | None, **options: Any) -> Any:
    from .postgres import from_url

    return from_url(url, **options, **({"clock": clock} if clock is not None else {}))


def _dynamodb(url: str, asynchronous: bool, clock: Clock | None, **options: Any) -> Any:
    from .dynamodb import from_url

    return from_url(url, **options, **({"clock": clock} if clock is not None else {}))


@dataclass(frozen=True)
class StoreKind:
    """A registered store: ``build(url, asynchronous, clock, **options)`` and a display name."""

    name: str
    build: Callable[..., Any]


_REDIS = StoreKind("redis", _redis)
_POSTGRES = StoreKind("postgres", _postgres)
#: scheme -> store kind. Adding a store = one module + one entry here.
STORES: dict[str, StoreKind] = {
    "memory": StoreKind("memory", _memory),
    "redis": _REDIS,
    "rediss": _REDIS,
    "unix": _REDIS,
    "postgres": _POSTGRES,
    "postgresql": _POSTGRES,
    "dynamodb": StoreKind("dynamodb", _dynamodb),
}


def store_kind(url: str) -> StoreKind:
    """The registered kind of ``url``'s scheme; :class:`ConfigError` listing the known schemes."""
    scheme = urlsplit(url).scheme if isinstance(url, str) and "://" in url else ""
    kind = STORES.get(scheme)
    if kind is None:
        known = ", ".join(f"{s}://" for s in STORES)
        raise ConfigError(f"unknown store URL {url!r}: expected one of {known}")
    return kind


def open_store(url: str, *, asynchronous: bool, clock: Clock | None = None, **options: Any) -> Any:
    """The store for ``url``: sync (``eval``...) or async (``aeval``...). Keyword ``options`` are the same
    names as the URL's query parameters and win over them; None values are ignored."""
    kw = {k: v for k, v in options.items() if v is not None}
    return store_kind(url).build(url, asynchronous, clock, **kw)


def open_sync(url: str, *, clock: Clock | None = None, **options: Any) -> ScriptStore:
    """:func:`open_store` for synchronous callers (``Limiter``, ``from_url``, meters, ``tk lua verify``)."""
    return open_store(url, asynchronous=False, clock=clock, **options)  # type: ignore[no-any-return]


def open_async(url: str, *, clock: Clock | None = None, **options: Any) -> AsyncScriptStore:
    """:func:`open_store` for asyncio callers (``AsyncLimiter``, ``TwoTierLimiter``, the server)."""
    return open_store(url, asynchronous=True, clock=clock, **options)  # type: ignore[no-any-return]


def resolve_sync(store: Any, clock: Clock | None = None) -> tuple[ScriptStore, bool]:
    """``(store, owned)`` from None (a private memory store), a URL or a store object (not owned)."""
    if store is None:
        return open_sync("memory://", clock=clock), True
    if isinstance(store, str):
        return open_sync(store, clock=clock), True
    return store, False


def resolve_async(store: Any, clock: Clock | None = None) -> tuple[AsyncScriptStore, bool]:
    """The asyncio twin of :func:`resolve_sync`."""
    if store is None:
        return open_async("memory://", clock=clock), True
    if isinstance(store, str):
        return open_async(store, clock=clock), True
    return store, False


def dynamodb_url(
    table: str,
    *,
    region: str | None = None,
    endpoint: str | None = None,
    prefix: str = "",
    create: bool = False,
) -> str:
    """``dynamodb://TABLE?...`` for flag values (the server's and ``tk lua verify``'s)."""
    from urllib.parse import urlencode

    query = urlencode(
        {
            k: v
            for k, v in (
                ("region", region),
                ("endpoint", endpoint),
                ("prefix", prefix),
                ("create", "1" if create else ""),
            )
            if v
        }
    )
    return f"dynamodb://{table}" + (f"?{query}" if query else "")


def store_from_flags(
    backend: str,
    *,
    redis_url: str | None = None,
    redis_prefix: str = "",
    postgres_url: str | None = None,
    postgres_table: str | None = None,
    postgres_prefix: str = "",
    dynamodb_table: str | None = None,
    dynamodb_region: str | None = None,
    dynamodb_endpoint: str | None = None,
    dynamodb_prefix: str = "",
    dynamodb_create_table: bool = False,
    memory_max_keys: int | None = None,
    clock: Clock | None = None,
) -> AsyncScriptStore:
    """The server's store for ``--store`` ``backend`` and its flags (the same options a URL carries;
    a non-empty flag wins over the URL's query parameter)."""
    if backend == "memory":
        if memory_max_keys is None:
            return open_async("memory://", clock=clock)
        return open_async("memory://", clock=clock, max_keys=memory_max_keys)
    if backend == "redis":
        if not redis_url:
            raise ConfigError("the redis store needs a URL (--redis redis://host:6379/0)")
        return open_async(redis_url, clock=clock, prefix=redis_prefix or None)
    if backend == "postgres":
        if not postgres_url:
            raise ConfigError("the postgres store needs a URL (--postgres-url postgresql://...)")
        return open_async(postgres_url, clock=clock, table=postgres_table, prefix=postgres_prefix or None)
    if backend == "dynamodb":
        if not dynamodb_table:
            raise ConfigError("the dynamodb store needs a table (--dynamodb-table NAME)")
        url = dynamodb_url(
            dynamodb_table,
            region=dynamodb_region,
            endpoint=dynamodb_endpoint,
            prefix=dynamodb_prefix,
            create=dynamodb_create_table,
        )
        return open_async(url, clock=clock)
    raise ConfigError(f"unknown store {backend!r}: expected memory, redis, postgres or dynamodb")
