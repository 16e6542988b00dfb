"""The gRPC service door: ``throttlekit.v1.RateLimiter`` over policies loaded from a config file.

Embedding::

    from throttlekit.server import create_rate_limiter_service_from_config, serve

    service = create_rate_limiter_service_from_config(open("policies.yaml").read(), store="redis://...")
    handle = serve(service, "127.0.0.1", 50051)   # background thread; handle.port, handle.close()

From async code use ``handle = await start(service, host, port)`` and ``await handle.aclose()``.
"""

from __future__ import annotations

from ..stores.pipelined import PipelinedRedisStore
from ._app import (
    DRAIN_S,
    GRACE_S,
    AsyncServerHandle,
    ServerHandle,
    check_tls_files,
    serve,
    server_credentials,
    start,
)
from ._door import MAX_KEY_BYTES, MAX_KEYS, RateLimiterDoor
from ._service import (
    FailMode,
    OutageLog,
    RateLimiterService,
    UnknownPolicyError,
    create_rate_limiter_service_from_config,
    redis_store,
)

__all__ = [
    "DRAIN_S",
    "GRACE_S",
    "MAX_KEYS",
    "MAX_KEY_BYTES",
    "AsyncServerHandle",
    "FailMode",
    "OutageLog",
    "PipelinedRedisStore",
    "RateLimiterDoor",
    "RateLimiterService",
    "ServerHandle",
    "UnknownPolicyError",
    "check_tls_files",
    "create_rate_limiter_service_from_config",
    "redis_store",
    "serve",
    "server_credentials",
    "start",
]
