"""throttlekit-py's module path for the Fleet door's asyncio client; it lives in :mod:`throttlekit.client`."""

from __future__ import annotations

from .client import AsyncFleetBackend, AsyncLeasedLimiter

__all__ = ["AsyncFleetBackend", "AsyncLeasedLimiter"]
