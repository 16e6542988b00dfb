"""throttlekit-py's module path for the lease spender; it lives in :mod:`throttlekit.meters`."""

from __future__ import annotations

from .meters import LeaseGrant, LeaseSpender

__all__ = ["LeaseGrant", "LeaseSpender"]
