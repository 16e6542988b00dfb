"""gRPC status codes mapped to the typed errors of :mod:`throttlekit.errors`. A denial is never an error."""

from __future__ import annotations

import grpc

from .._errors import (
    InvalidRequestError,
    OperationNotSupportedError,
    PolicyNotFoundError,
    ServiceUnavailableError,
    ThrottleKitError,
)

__all__ = [
    "InvalidRequestError",
    "OperationNotSupportedError",
    "PolicyNotFoundError",
    "ServiceUnavailableError",
    "map_rpc_error",
]


_UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def map_rpc_error(err: grpc.RpcError) -> ThrottleKitError:
    """The typed error for a failed call (``err`` is kept as ``__cause__`` by the callers)."""
    code = err.code()
    details = err.details() or ""
    if code == grpc.StatusCode.NOT_FOUND:
        return PolicyNotFoundError(details)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return OperationNotSupportedError(details)
    if code in _UNAVAILABLE:
        return ServiceUnavailableError(f"{code.name}: {details}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequestError(details)
    return ThrottleKitError(f"{code.name}: {details}")
