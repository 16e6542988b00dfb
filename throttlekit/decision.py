"""throttlekit-py's module path for the answer types; they live in :mod:`throttlekit._types`."""

from __future__ import annotations

from ._types import Decision, Forecast

__all__ = ["Decision", "Forecast"]
