"""ThrottleKit for Python: rate limiting, concurrency and cost governance decided by Lua.

Every decision is computed by a Lua transform under ``lua/``; the same bytes run inside Redis
(EVALSHA) and in-process (lupa, Lua 5.1) for the embedded memory store.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from ._clock import SERVER_TIME, Clock, ManualClock, SystemClock
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
from ._types import Decision, Forecast
from .strategies import (
    FixedWindow,
    Gcra,
    Quota,
    SlidingWindow,
    SlidingWindowLog,
    Strategy,
    TokenBucket,
    from_spec,
    parse_duration,
)

if _typing.TYPE_CHECKING:
    from .admission import Admission, Admitter, AsyncAdmission, AsyncAdmitter
    from .client import (
        AsyncFleetBackend,
        AsyncLeasedLimiter,
        AsyncMonitorBackend,
        AsyncRedisBackend,
        AsyncRedisClientLike,
        AsyncServiceBackend,
        FleetBackend,
        Lease,
        LeasedLimiter,
        MonitorBackend,
        MonitorPolicy,
        MonitorSnapshot,
        RedisBackend,
        RedisClientLike,
        ServiceBackend,
    )
    from .headers import decision_headers
    from .limiter import AsyncLimiter, Limiter
    from .meters import LeakyBucket, LeaseGrant, LeaseSpender, Reservation, TokenBudget
    from .ratelimit import Checker, OnUnavailable, RateLimited, as_checker, bind_policy, rate_limit
    from .stores import AsyncRedisStore, MemoryStore, RedisStore, from_url, from_url_async
    from .two_tier import TwoTierLimiter

#: Public names imported on first use (PEP 562), so ``import throttlekit`` loads neither grpc, protobuf
#: nor redis: each comes in with the first client or store that needs it.
_LAZY = {
    "Admission": "admission",
    "Admitter": "admission",
    "AsyncAdmission": "admission",
    "AsyncAdmitter": "admission",
    "AsyncFleetBackend": "client",
    "AsyncLeasedLimiter": "client",
    "FleetBackend": "client",
    "Lease": "client",
    "LeasedLimiter": "client",
    "AsyncRedisBackend": "client",
    "AsyncRedisClientLike": "client",
    "AsyncMonitorBackend": "client",
    "MonitorBackend": "client",
    "MonitorPolicy": "client",
    "MonitorSnapshot": "client",
    "AsyncServiceBackend": "client",
    "RedisBackend": "client",
    "RedisClientLike": "client",
    "ServiceBackend": "client",
    "decision_headers": "headers",
    "AsyncLimiter": "limiter",
    "Limiter": "limiter",
    "LeakyBucket": "meters",
    "LeaseGrant": "meters",
    "LeaseSpender": "meters",
    "Reservation": "meters",
    "TokenBudget": "meters",
    "AsyncRedisStore": "stores",
    "MemoryStore": "stores",
    "RedisStore": "stores",
    "from_url": "stores",
    "from_url_async": "stores",
    "TwoTierLimiter": "two_tier",
    "Checker": "ratelimit",
    "OnUnavailable": "ratelimit",
    "RateLimited": "ratelimit",
    "as_checker": "ratelimit",
    "bind_policy": "ratelimit",
    "rate_limit": "ratelimit",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'throttlekit' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "SERVER_TIME",
    "Admission",
    "Admitter",
    "AsyncAdmission",
    "AsyncAdmitter",
    "AsyncFleetBackend",
    "AsyncLeasedLimiter",
    "AsyncLimiter",
    "AsyncMonitorBackend",
    "AsyncRedisBackend",
    "AsyncRedisClientLike",
    "AsyncRedisStore",
    "AsyncServiceBackend",
    "Checker",
    "Clock",
    "ConcurrentUpdateError",
    "ConfigError",
    "Decision",
    "FixedWindow",
    "FleetBackend",
    "Forecast",
    "Gcra",
    "InvalidRequestError",
    "LeakyBucket",
    "Lease",
    "LeaseGrant",
    "LeaseSpender",
    "LeasedLimiter",
    "Limiter",
    "LoaderError",
    "ManualClock",
    "MemoryStore",
    "MonitorBackend",
    "MonitorPolicy",
    "MonitorSnapshot",
    "NotSupportedError",
    "OnUnavailable",
    "OperationNotSupportedError",
    "PolicyNotFoundError",
    "Quota",
    "RateLimited",
    "RedisBackend",
    "RedisClientLike",
    "RedisStore",
    "Reservation",
    "ScriptError",
    "ServiceBackend",
    "ServiceUnavailableError",
    "SlidingWindow",
    "SlidingWindowLog",
    "StoreError",
    "Strategy",
    "SystemClock",
    "ThrottleKitError",
    "TokenBucket",
    "TokenBudget",
    "TwoTierLimiter",
    "WrongTypeError",
    "__version__",
    "as_checker",
    "bind_policy",
    "decision_headers",
    "from_spec",
    "from_url",
    "from_url_async",
    "parse_duration",
    "rate_limit",
]
