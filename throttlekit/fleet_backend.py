"""throttlekit-py's module path for the Fleet door client; it lives in :mod:`throttlekit.client`."""

from __future__ import annotations

from .client import FleetBackend, Lease, LeasedLimiter

__all__ = ["FleetBackend", "Lease", "LeasedLimiter"]
