"""throttlekit-py's module path for the asyncio Redis backend; it lives in :mod:`throttlekit.client`."""

from __future__ import annotations

from .client import AsyncRedisBackend, AsyncRedisClientLike

__all__ = ["AsyncRedisBackend", "AsyncRedisClientLike"]
