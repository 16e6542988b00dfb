"""throttlekit-py's module path for the asyncio Fleet door client; it lives in :mod:`throttlekit.client`."""

from __future__ import annotations

from .client import AsyncFleetBackend, AsyncLeasedLimiter

__all__ = ["AsyncFleetBackend", "AsyncLeasedLimiter"]
