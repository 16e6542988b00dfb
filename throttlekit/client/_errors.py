"""Typed client errors, mapped from gRPC status codes. A denial is never one of these."""

from __future__ import annotations

import grpc

from .._errors import NotSupportedError, ThrottleKitError

__all__ = [
    "InvalidRequestError",
    "OperationNotSupportedError",
    "PolicyNotFoundError",
    "ServiceUnavailableError",
    "map_rpc_error",
]


class PolicyNotFoundError(ThrottleKitError, LookupError):
    """The service has no policy of that name (``NOT_FOUND``); the message lists the configured ones."""

    code = "not_found"


class OperationNotSupportedError(NotSupportedError):
    """The policy's kind does not offer this operation (``UNIMPLEMENTED``)."""


class ServiceUnavailableError(ThrottleKitError):
    """The service could not be reached in time (``UNAVAILABLE`` or ``DEADLINE_EXCEEDED``)."""

    code = "service_unavailable"


class InvalidRequestError(ThrottleKitError, ValueError):
    """The service rejected the request as malformed (``INVALID_ARGUMENT``)."""

    code = "invalid_argument"


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
