"""throttlekit-py's module path for the blocking gRPC client; it lives in :mod:`throttlekit.client`."""

from __future__ import annotations

from .client import Admission, ServiceBackend

__all__ = ["Admission", "ServiceBackend"]
