"""Limiters for the web-adapter tests: the same 2-per-minute limit embedded, on Redis and through a server,
and limiters whose backend is down (a refused port, a stopped redis-server of the test's own)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import throttlekit as tk

from .env import redis_client
from .redis_server import OwnRedis, free_port
from .server import start
from .stores import unique_prefix

__all__ = ["KINDS", "OUTAGES", "dead_limiter", "limiter_of"]

KINDS = ("embedded", "redis", "service")
OUTAGES = ("refused", "stopped")

#: the limit every adapter test uses: 2 requests per minute (a fixed window, so a denial waits > 0 s)
LIMIT = 2


def limiter_of(kind: str, stack: contextlib.ExitStack, limit: int = LIMIT) -> tuple[Any, str | None]:
    """``(limiter, policy)`` of ``kind`` allowing ``limit`` requests per minute per key; the policy is
    set for the server kind only. Everything is closed by ``stack``."""
    strategy = tk.FixedWindow(limit, "1m")
    if kind == "embedded":
        # a manual clock at the start of a window: nothing in the test can cross into the next one
        now = (time.time_ns() // 1_000_000 // 60_000) * 60_000 + 1_000
        return stack.enter_context(tk.Limiter(strategy, clock=tk.ManualClock(now))), None
    if kind == "redis":
        return tk.RedisBackend(redis_client(), strategy, prefix=unique_prefix("web")), None
    served = start({"api": {"strategy": "fixedWindow", "limit": limit, "period": "1m"}})
    stack.callback(served.close)
    return stack.enter_context(tk.ServiceBackend(served.target, timeout=10)), "api"


def dead_limiter(outage: str, stack: contextlib.ExitStack) -> tk.RedisBackend:
    """A RedisBackend whose Redis is down: nothing listens on its port (``refused``), or its own
    redis-server answered once and was then stopped (``stopped``)."""
    strategy = tk.FixedWindow(LIMIT, "1m")
    if outage == "refused":
        backend = tk.RedisBackend(url=f"redis://127.0.0.1:{free_port()}/0", strategy=strategy)
        stack.callback(backend.close)
        return backend
    server = OwnRedis()
    server.start()
    stack.callback(server.stop)
    backend = tk.RedisBackend(url=server.url, strategy=strategy, prefix=unique_prefix("web"))
    stack.callback(backend.close)
    assert backend.check("warm-up").allowed  # it worked before the outage
    server.stop()
    return backend
