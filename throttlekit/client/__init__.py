"""Clients: the gRPC service door (:class:`ServiceBackend`, :class:`AsyncServiceBackend`), the Fleet
door (:class:`FleetBackend`, :class:`AsyncFleetBackend`: leased budgets spent locally) and the direct
Redis backends (:class:`RedisBackend`, :class:`AsyncRedisBackend`).

::

    from throttlekit.client import ServiceBackend

    with ServiceBackend("127.0.0.1:50051", fail="open", timeout=0.25) as tk:
        d = tk.check("api", user_id)
        if not d.allowed:
            ...  # 429, Retry-After: d.retry_after_ms

Errors: :class:`PolicyNotFoundError` (NOT_FOUND), :class:`OperationNotSupportedError` (UNIMPLEMENTED),
:class:`ServiceUnavailableError` (UNAVAILABLE / DEADLINE_EXCEEDED, unless ``fail`` settles it),
:class:`InvalidRequestError` (INVALID_ARGUMENT), all :class:`~throttlekit.ThrottleKitError`.
"""

from __future__ import annotations

from ._common import LeaseBeat
from ._errors import (
    InvalidRequestError,
    OperationNotSupportedError,
    PolicyNotFoundError,
    ServiceUnavailableError,
    map_rpc_error,
)
from ._fleet import AsyncFleetBackend, AsyncLeasedLimiter, FleetBackend, Lease, LeasedLimiter
from ._monitor import AsyncMonitorBackend, MonitorBackend, MonitorDenial, MonitorPolicy, MonitorSnapshot
from ._redis import AsyncRedisBackend, AsyncRedisClientLike, RedisBackend, RedisClientLike
from ._service import Admission, AsyncAdmission, AsyncServiceBackend, ServiceBackend

__all__ = [
    "Admission",
    "AsyncAdmission",
    "AsyncFleetBackend",
    "AsyncLeasedLimiter",
    "AsyncMonitorBackend",
    "AsyncRedisBackend",
    "AsyncRedisClientLike",
    "AsyncServiceBackend",
    "FleetBackend",
    "InvalidRequestError",
    "Lease",
    "LeaseBeat",
    "LeasedLimiter",
    "MonitorBackend",
    "MonitorDenial",
    "MonitorPolicy",
    "MonitorSnapshot",
    "OperationNotSupportedError",
    "PolicyNotFoundError",
    "RedisBackend",
    "RedisClientLike",
    "ServiceBackend",
    "ServiceUnavailableError",
    "map_rpc_error",
]
