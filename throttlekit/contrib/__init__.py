"""Web-framework adapters: ``throttlekit.contrib.fastapi``, ``.starlette``, ``.django``, ``.flask``.

Each submodule imports its framework (install the extra: ``pip install 'throttlekit-server[fastapi]'``,
``[starlette]``, ``[django]``, ``[flask]`` or ``[web]`` for all), so ``import throttlekit`` and this package
load none. Every adapter takes a checker or any of our limiters (an embedded ``Limiter``, a
``RedisBackend``, a ``ServiceBackend`` with ``policy=``), answers a denial with 429, ``Retry-After`` and
the rate-limit headers, and settles an unreachable backend by ``on_unavailable`` (``"allow"``: fail open,
the default; ``"deny"``: 503).
"""

from __future__ import annotations

from ..headers import decision_headers
from ..ratelimit import Checker, OnUnavailable, RateLimited, as_checker, bind_policy, rate_limit

__all__ = [
    "Checker",
    "OnUnavailable",
    "RateLimited",
    "as_checker",
    "bind_policy",
    "decision_headers",
    "rate_limit",
]
