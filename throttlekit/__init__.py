"""ThrottleKit for Python: rate limiting, concurrency and cost governance decided by Lua.

Every decision is computed by a Lua transform under ``lua/``; the same bytes run inside Redis
(EVALSHA) and in-process (lupa, Lua 5.1) for the embedded memory store.
"""

from __future__ import annotations

from ._clock import SERVER_TIME, Clock, ManualClock, SystemClock
from ._errors import (
    ConcurrentUpdateError,
    ConfigError,
    LoaderError,
    NotSupportedError,
    ScriptError,
    StoreError,
    ThrottleKitError,
)
from ._types import Decision, Forecast
from .client import (
    AsyncRedisBackend,
    AsyncServiceBackend,
    InvalidRequestError,
    OperationNotSupportedError,
    PolicyNotFoundError,
    RedisBackend,
    ServiceBackend,
    ServiceUnavailableError,
)
from .limiter import AsyncLimiter, Limiter
from .meters import LeakyBucket, LeaseSpender, Reservation, TokenBudget
from .stores import AsyncRedisStore, MemoryStore, RedisStore, from_url
from .strategies import (
    FixedWindow,
    Gcra,
    Quota,
    SlidingWindow,
    SlidingWindowLog,
    Strategy,
    TokenBucket,
    parse_duration,
)
from .two_tier import TwoTierLimiter

__version__ = "0.1.0"

__all__ = [
    "SERVER_TIME",
    "AsyncLimiter",
    "AsyncRedisBackend",
    "AsyncRedisStore",
    "AsyncServiceBackend",
    "Clock",
    "ConcurrentUpdateError",
    "ConfigError",
    "Decision",
    "FixedWindow",
    "Forecast",
    "Gcra",
    "InvalidRequestError",
    "LeakyBucket",
    "LeaseSpender",
    "Limiter",
    "LoaderError",
    "ManualClock",
    "MemoryStore",
    "NotSupportedError",
    "OperationNotSupportedError",
    "PolicyNotFoundError",
    "Quota",
    "RedisBackend",
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
    "from_url",
    "parse_duration",
]
