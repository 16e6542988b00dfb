"""What every adapter shares: argument checks, the decision with the outage caught, the headers."""

from __future__ import annotations

from typing import Any

from .._errors import ConfigError, ServiceUnavailableError
from .._types import Decision
from ..headers import STYLES, Style, decision_headers
from ..ratelimit import Checker, as_checker, checker_is_async, resolve_async, resolve_sync

__all__ = ["Limit"]

DENIED_BODY = "rate limit exceeded"
UNAVAILABLE_BODY = "rate limiter unavailable"


class Limit:
    """One configured limit: the checker, its cost, the header style and the outage choice.

    ``decide``/``adecide`` return the decision, or None when the backend is unreachable and
    ``on_unavailable`` is ``"allow"``; with ``"deny"`` they return None too and :attr:`fail_closed` says
    to answer 503.
    """

    def __init__(
        self, checker: Checker | Any, *, cost: int, style: Style, on_unavailable: str, policy: str | None
    ) -> None:
        if style not in STYLES:
            raise ConfigError(f"unknown header style {style!r}; allowed: {', '.join(map(repr, STYLES))}")
        if on_unavailable not in ("allow", "deny"):
            raise ConfigError(f"on_unavailable must be 'allow' or 'deny', got {on_unavailable!r}")
        if cost.__class__ is not int or cost < 1:
            raise ConfigError(f"cost must be a positive integer, got {cost!r}")
        self.checker = as_checker(checker, policy)
        self.is_async = checker_is_async(self.checker)
        self.cost = cost
        self.style = style
        self.fail_closed = on_unavailable == "deny"
        self.policy = policy or "default"
        self.window_ms: float | None = getattr(self.checker, "window_ms", None)

    def decide(self, key: str, cost: int | None = None) -> Decision | None:
        try:
            return resolve_sync(self.checker, key, self.cost if cost is None else cost)
        except ServiceUnavailableError:
            return None

    async def adecide(self, key: str, cost: int | None = None) -> Decision | None:
        try:
            return await resolve_async(
                self.checker, key, self.cost if cost is None else cost, is_async=self.is_async
            )
        except ServiceUnavailableError:
            return None

    def headers(self, decision: Decision) -> dict[str, str]:
        return decision_headers(decision, self.style, policy=self.policy, window_ms=self.window_ms)
