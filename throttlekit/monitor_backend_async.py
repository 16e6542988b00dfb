"""throttlekit-py's module path for the asyncio Monitor door client; it lives in :mod:`throttlekit.client`."""

from __future__ import annotations

from .client import AsyncMonitorBackend

__all__ = ["AsyncMonitorBackend"]
