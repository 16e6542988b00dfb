"""throttlekit-py's module path for the asyncio gRPC client; it lives in :mod:`throttlekit.client`."""

from __future__ import annotations

from .client import AsyncAdmission, AsyncServiceBackend

__all__ = ["AsyncAdmission", "AsyncServiceBackend"]
