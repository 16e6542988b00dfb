"""throttlekit-py's module path for the direct Redis backend; it lives in :mod:`throttlekit.client`."""

from __future__ import annotations

from .client import RedisBackend, RedisClientLike

__all__ = ["RedisBackend", "RedisClientLike"]
