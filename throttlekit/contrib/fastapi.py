"""FastAPI: :func:`RateLimit` builds a per-route dependency (and :class:`ThrottleKitMiddleware` is here too).

::

    from fastapi import Depends, FastAPI
    from throttlekit import Limiter, Gcra
    from throttlekit.contrib.fastapi import RateLimit

    app = FastAPI()
    per_ip = RateLimit(Limiter(Gcra(100, "1m")))

    @app.get("/items", dependencies=[Depends(per_ip)])
    async def items(): ...

A denial raises ``HTTPException(429)`` carrying ``Retry-After`` and the rate-limit headers; an admitted
request gets the headers on the response FastAPI builds (a route returning its own ``Response`` keeps it
as is: use the middleware to stamp those).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException, Request, Response

from ..headers import Style
from ..ratelimit import Checker, OnUnavailable
from ._common import DENIED_BODY, UNAVAILABLE_BODY, Limit
from .starlette import ThrottleKitMiddleware

__all__ = ["RateLimit", "ThrottleKitMiddleware"]


def _peer(request: Request) -> str:
    """The connecting peer's address (a client-set ``X-Forwarded-For`` is never trusted)."""
    return str(request.client.host) if request.client else "anonymous"


def RateLimit(
    checker: Checker | Any,
    *,
    key: Callable[[Request], str] = _peer,
    cost: int = 1,
    style: Style = "ietf",
    on_unavailable: OnUnavailable = "allow",
    stamp_headers: bool = True,
    policy: str | None = None,
) -> Callable[[Request, Response], Awaitable[None]]:
    """A dependency admitting the request before the route runs; use it in ``Depends(...)``.

    ``checker``: a checker or any of our limiters (``policy=`` names the policy of a service backend);
    ``key(request)`` gives the limit key (default: the peer address); ``on_unavailable``: ``"allow"``
    (fail open, default) or ``"deny"`` (503) when the backend is down.
    """
    limit = Limit(checker, cost=cost, style=style, on_unavailable=on_unavailable, policy=policy)

    async def dependency(request: Request, response: Response) -> None:
        decision = await limit.adecide(key(request))
        if decision is None:
            if limit.fail_closed:
                raise HTTPException(status_code=503, detail=UNAVAILABLE_BODY)
            return
        if not decision.allowed:
            raise HTTPException(status_code=429, detail=DENIED_BODY, headers=limit.headers(decision))
        if stamp_headers:
            response.headers.update(limit.headers(decision))

    return dependency
