"""throttlekit-py's module path for the Monitor door client; it lives in :mod:`throttlekit.client`."""

from __future__ import annotations

from .client import MonitorBackend, MonitorPolicy, MonitorSnapshot

__all__ = ["MonitorBackend", "MonitorPolicy", "MonitorSnapshot"]
