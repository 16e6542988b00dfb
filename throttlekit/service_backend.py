"""throttlekit-py's module path for the blocking gRPC client (:mod:`throttlekit.client`) and its admission."""

from __future__ import annotations

from .admission import Admission
from .client import ServiceBackend

__all__ = ["Admission", "ServiceBackend"]
