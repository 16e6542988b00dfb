"""Django: the :func:`rate_limit` view decorator and :class:`ThrottleKitMiddleware` (denials as 429).

::

    from throttlekit import RedisBackend, Gcra
    from throttlekit.contrib.django import rate_limit

    @rate_limit(RedisBackend(url="redis://127.0.0.1:6379/0", strategy=Gcra(100, "1m")))
    def my_view(request): ...

With ``block=True`` (default) a denial raises :class:`Ratelimited`, a ``PermissionDenied`` (403 on its
own); add ``"throttlekit.contrib.django.ThrottleKitMiddleware"`` to ``MIDDLEWARE`` to answer it with 429,
``Retry-After`` and the headers (style from ``settings.THROTTLEKIT_HEADER_STYLE``, default ``"ietf"``).
With ``block=False`` the view runs and reads ``request.throttlekit_decision`` (None during an outage
that failed open).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse

from .._types import Decision
from ..headers import Style, decision_headers
from ..ratelimit import Checker, OnUnavailable
from ._common import DENIED_BODY, UNAVAILABLE_BODY, Limit

__all__ = ["Ratelimited", "ThrottleKitMiddleware", "rate_limit"]

F = TypeVar("F", bound=Callable[..., Any])


class Ratelimited(PermissionDenied):  # type: ignore[misc]
    """A denial from ``rate_limit(block=True)``; ``decision`` carries it."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(DENIED_BODY)


def _remote_addr(request: Any) -> str:
    """``REMOTE_ADDR``, the connecting peer (a client-set ``X-Forwarded-For`` is never trusted)."""
    return str(request.META.get("REMOTE_ADDR") or "anonymous")


def rate_limit(
    checker: Checker | Any,
    *,
    key: Callable[[Any], str] = _remote_addr,
    cost: int = 1,
    block: bool = True,
    style: Style = "ietf",
    on_unavailable: OnUnavailable = "allow",
    stamp_headers: bool = True,
    policy: str | None = None,
) -> Callable[[F], F]:
    """Admit each request of a (sync) view first; see the module docstring for ``block``.

    ``checker``: a checker or any of our limiters (``policy=`` names the policy of a service backend);
    ``on_unavailable``: ``"allow"`` (fail open, default) or ``"deny"`` (503) when the backend is down.
    """
    limit = Limit(checker, cost=cost, style=style, on_unavailable=on_unavailable, policy=policy)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(request: Any, *args: Any, **kwargs: Any) -> Any:
            decision = limit.decide(key(request))
            request.throttlekit_decision = decision
            if decision is None:
                if limit.fail_closed:
                    return HttpResponse(UNAVAILABLE_BODY, status=503)
                return view(request, *args, **kwargs)
            if not decision.allowed and block:
                raise Ratelimited(decision)
            response = view(request, *args, **kwargs)
            if stamp_headers:
                for name, value in limit.headers(decision).items():
                    response[name] = value
            return response

        return cast(F, wrapped)

    return decorate


class ThrottleKitMiddleware:
    """Answers a :class:`Ratelimited` raised by a view with 429 and the rate-limit headers."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_exception(self, request: Any, exception: Exception) -> Any:
        if not isinstance(exception, Ratelimited):
            return None
        style: Style = getattr(settings, "THROTTLEKIT_HEADER_STYLE", "ietf")
        response = HttpResponse(DENIED_BODY, status=429)
        for name, value in decision_headers(exception.decision, style).items():
            response[name] = value
        return response
