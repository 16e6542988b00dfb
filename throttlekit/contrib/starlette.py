"""Starlette (and any ASGI app, FastAPI included): :class:`ThrottleKitMiddleware` limits every HTTP request.

::

    from throttlekit import ServiceBackend, bind_policy
    from throttlekit.contrib.starlette import ThrottleKitMiddleware

    app.add_middleware(ThrottleKitMiddleware, checker=bind_policy(ServiceBackend(), "api"))

A pure ASGI middleware (the body streams through untouched): a denial is answered with 429 and the
headers, an admitted response gets the headers added to its start message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..headers import Style
from ..ratelimit import Checker, OnUnavailable
from ._common import DENIED_BODY, UNAVAILABLE_BODY, Limit

__all__ = ["ThrottleKitMiddleware"]


def _peer(scope: Scope) -> str:
    """The connecting peer's address (a client-set ``X-Forwarded-For`` is never trusted)."""
    client = scope.get("client")
    return str(client[0]) if client else "anonymous"


class ThrottleKitMiddleware:
    """Rate-limit every HTTP request of an ASGI app.

    ``checker``: a checker or any of our limiters (``policy=`` for a service backend); ``key(scope)``
    gives the limit key (default: the peer address); ``cost`` per request; ``style`` of the headers;
    ``on_unavailable``: ``"allow"`` (fail open, default) or ``"deny"`` (503) when the backend is down.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        checker: Checker | Any,
        key: Callable[[Scope], str] = _peer,
        cost: int = 1,
        style: Style = "ietf",
        on_unavailable: OnUnavailable = "allow",
        policy: str | None = None,
    ) -> None:
        self.app = app
        self.key = key
        self.limit = Limit(checker, cost=cost, style=style, on_unavailable=on_unavailable, policy=policy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        decision = await self.limit.adecide(self.key(scope))
        if decision is None:
            if self.limit.fail_closed:
                await JSONResponse({"detail": UNAVAILABLE_BODY}, status_code=503)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        headers = self.limit.headers(decision)
        if not decision.allowed:
            await JSONResponse({"detail": DENIED_BODY}, status_code=429, headers=headers)(
                scope, receive, send
            )
            return
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
