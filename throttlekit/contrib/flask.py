"""Flask: the :class:`ThrottleKit` extension; ``@tk.limit()`` limits a view.

::

    from flask import Flask
    from throttlekit import Limiter, Gcra
    from throttlekit.contrib.flask import ThrottleKit

    app = Flask(__name__)
    tk = ThrottleKit(app, checker=Limiter(Gcra(100, "1m")))

    @app.get("/items")
    @tk.limit()
    def items(): ...

A denial answers 429 with ``Retry-After`` and the headers; an admitted response gets the headers.
``limit(checker=..., key=..., cost=..., policy=...)`` overrides the extension's defaults for one route.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import abort, make_response, request

from ..headers import Style
from ..ratelimit import Checker, OnUnavailable
from ._common import DENIED_BODY, Limit

__all__ = ["ThrottleKit"]

F = TypeVar("F", bound=Callable[..., Any])


def _remote_addr() -> str:
    """The connecting peer (``request.remote_addr``; a client-set ``X-Forwarded-For`` is never trusted)."""
    return str(request.remote_addr or "anonymous")


class ThrottleKit:
    """The Flask extension: default ``checker`` (a checker or any of our limiters), ``key()`` (reads the
    request context; default: the peer address), ``default_cost``, header ``style``, ``headers_enabled``
    and ``on_unavailable`` (``"allow"``: fail open, default; ``"deny"``: 503)."""

    def __init__(
        self,
        app: Any = None,
        *,
        checker: Checker | Any | None = None,
        key: Callable[[], str] = _remote_addr,
        default_cost: int = 1,
        style: Style = "ietf",
        headers_enabled: bool = True,
        on_unavailable: OnUnavailable = "allow",
        policy: str | None = None,
    ) -> None:
        self.checker = checker
        self.key = key
        self.default_cost = default_cost
        self.style = style
        self.headers_enabled = headers_enabled
        self.on_unavailable = on_unavailable
        self.policy = policy
        if checker is not None:
            Limit(checker, cost=default_cost, style=style, on_unavailable=on_unavailable, policy=policy)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        """Register on ``app`` (``app.extensions["throttlekit"]``)."""
        if not hasattr(app, "extensions"):
            app.extensions = {}
        app.extensions["throttlekit"] = self

    def limit(
        self,
        *,
        checker: Checker | Any | None = None,
        key: Callable[[], str] | None = None,
        cost: int | None = None,
        policy: str | None = None,
    ) -> Callable[[F], F]:
        """Limit one view; each argument overrides the extension's default for this route."""

        def decorate(view: F) -> F:
            built: list[Any] = [None, None]  # [the checker it was built for, its Limit]

            def configured() -> Limit:
                chosen = checker if checker is not None else self.checker
                if chosen is None:
                    raise RuntimeError(
                        "throttlekit: no checker: pass checker= to ThrottleKit(...) or to @tk.limit(...)"
                    )
                if built[0] is not chosen:  # first request, or the extension's checker was replaced
                    built[1] = Limit(
                        chosen,
                        cost=self.default_cost if cost is None else cost,
                        style=self.style,
                        on_unavailable=self.on_unavailable,
                        policy=policy if policy is not None else self.policy,
                    )
                    built[0] = chosen
                return cast(Limit, built[1])

            @functools.wraps(view)
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                lim = configured()
                decision = lim.decide((key or self.key)())
                if decision is None:
                    if lim.fail_closed:
                        abort(503)
                    return view(*args, **kwargs)
                if decision.allowed:
                    response = make_response(view(*args, **kwargs))
                else:
                    response = make_response((DENIED_BODY, 429))
                if self.headers_enabled:
                    response.headers.update(lim.headers(decision))
                return response

            return cast(F, wrapped)

        return decorate
