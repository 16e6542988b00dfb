"""throttlekit-py's module path for the asyncio gRPC client (:mod:`throttlekit.client`) and its admission."""

from __future__ import annotations

from .admission import AsyncAdmission
from .client import AsyncServiceBackend

__all__ = ["AsyncAdmission", "AsyncServiceBackend"]
