"""The public exception tree (the module throttlekit-py code imports its errors from).

Every class lives in :mod:`throttlekit._errors`; this module names them for users without loading grpc.
``except ServiceUnavailableError`` catches a server outage and a store outage alike (``StoreError`` is a
subclass); a denial is never an error (``Decision.allowed is False``, or :class:`~throttlekit.RateLimited`
from the decorator and adapters, which is deliberately not a ``ThrottleKitError``).
"""

from __future__ import annotations

from ._errors import (
    ConcurrentUpdateError,
    ConfigError,
    InvalidRequestError,
    LoaderError,
    NotSupportedError,
    OperationNotSupportedError,
    PolicyNotFoundError,
    ScriptError,
    ServiceUnavailableError,
    StoreError,
    ThrottleKitError,
    WrongTypeError,
)

__all__ = [
    "ConcurrentUpdateError",
    "ConfigError",
    "InvalidRequestError",
    "LoaderError",
    "NotSupportedError",
    "OperationNotSupportedError",
    "PolicyNotFoundError",
    "ScriptError",
    "ServiceUnavailableError",
    "StoreError",
    "ThrottleKitError",
    "WrongTypeError",
]
