"""The framework-agnostic front door: :func:`rate_limit`, :class:`RateLimited`, checkers.

A *checker* is a callable ``checker(key, *, cost=1)`` returning a :class:`~throttlekit.Decision` (or an
awaitable of one). The decorator and every ``throttlekit.contrib`` adapter consume one. :func:`as_checker`
makes one from any of our limiters:

* a keyed limiter (``Limiter``, ``AsyncLimiter``, ``RedisBackend``, ``AsyncRedisBackend``, ``TwoTierLimiter``
  or anything with ``check(key, cost)``) is used through its ``check``;
* a policy backend (``ServiceBackend``, ``AsyncServiceBackend``: ``check(policy, key, cost)``) needs the
  policy, :func:`bind_policy` fixes it;
* a callable is taken as a checker already (a bound ``RedisBackend.check`` is one).

A sync checker called from async code runs in a worker thread, unless its store does no I/O (the memory
store, ``inline``): then it runs on the event loop, which is the thread lupa must stay on.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, TypeVar, cast

from ._errors import ConfigError
from ._types import Decision

__all__ = ["Checker", "OnUnavailable", "RateLimited", "as_checker", "bind_policy", "rate_limit"]

F = TypeVar("F", bound=Callable[..., Any])

#: What an adapter does when the limiter's backend cannot be reached (a ``ServiceUnavailableError``,
#: which includes every ``StoreError``): ``"allow"`` admits (fail open), ``"deny"`` refuses with 503.
OnUnavailable = Literal["allow", "deny"]


class Checker(Protocol):
    """``checker(key, *, cost=1)``: a :class:`Decision`, or an awaitable of one for an async checker."""

    def __call__(self, key: str, *, cost: int = 1) -> Decision | Awaitable[Decision]: ...


class PolicyBackend(Protocol):
    """A backend deciding named policies: ``check(policy, key, cost)`` (the service clients)."""

    def check(self, policy: str, key: str, cost: int = 1) -> Decision | Awaitable[Decision]: ...


class RateLimited(Exception):
    """A denial raised by :func:`rate_limit` and the blocking adapters; ``decision`` carries the verdict.

    Not a :class:`~throttlekit.ThrottleKitError`: the limiter worked and said no, so an
    ``except ThrottleKitError`` written for outages does not swallow it.
    """

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(f"rate limit exceeded (retry after {decision.retry_after_ms} ms)")

    @property
    def retry_after_ms(self) -> int:
        return self.decision.retry_after_ms

    @property
    def reset_at(self) -> int:
        return self.decision.reset_at


def _is_async_callable(obj: object) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(obj):
        return True
    return inspect.iscoroutinefunction(getattr(obj, "__call__", None))  # noqa: B004


class _Bound:
    """A checker made by :func:`as_checker`: remembers whether it is async and whether it runs inline."""

    __slots__ = ("__wrapped__", "_call", "inline", "is_async", "window_ms")

    def __init__(self, call: Callable[..., Any], *, is_async: bool, inline: bool, wrapped: object) -> None:
        self._call = call
        self.is_async = is_async
        self.inline = inline
        self.__wrapped__ = wrapped
        #: the limiter's counting window (ms) when it has one, for the structured headers' ``w``
        self.window_ms: float | None = getattr(getattr(wrapped, "strategy", None), "quota_window_ms", None)

    def __call__(self, key: str, *, cost: int = 1) -> Any:
        return self._call(key, cost=cost)

    def __repr__(self) -> str:
        return f"<checker for {self.__wrapped__!r}>"


def _accepts_policy(check: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(check).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] == "policy"


def _inline(limiter: object) -> bool:
    return bool(getattr(getattr(limiter, "store", None), "inline", False))


def bind_policy(backend: PolicyBackend, policy: str) -> Checker:
    """A checker deciding ``policy`` on a service backend: ``key -> backend.check(policy, key, cost)``.

    Async for an async backend, sync for a sync one.
    """
    if not isinstance(policy, str) or not policy:
        raise ConfigError(f"policy must be a non-empty string, got {policy!r}")
    check = backend.check
    if _is_async_callable(check):

        async def async_checker(key: str, *, cost: int = 1) -> Decision:
            return await cast("Awaitable[Decision]", check(policy, key, cost))

        return async_checker

    def checker(key: str, *, cost: int = 1) -> Decision:
        return cast(Decision, check(policy, key, cost))

    return checker


def as_checker(limiter: Any, policy: str | None = None) -> Checker:
    """A checker for any of our limiters (see the module docstring). ``policy`` is required for a
    service backend and refused for a keyed limiter."""
    if isinstance(limiter, _Bound) and policy is None:
        return limiter
    check = getattr(limiter, "check", None)
    if check is None or not callable(check):
        if callable(limiter) and policy is None:
            return cast(Checker, limiter)
        raise ConfigError(
            f"expected a checker or a limiter with a check() method, got {type(limiter).__name__}"
        )
    if _accepts_policy(check):
        if policy is None:
            raise ConfigError(
                f"{type(limiter).__name__} decides named policies: pass policy='<name>' "
                "(or bind_policy(backend, '<name>'))"
            )
        return _Bound(
            bind_policy(limiter, policy), is_async=_is_async_callable(check), inline=False, wrapped=limiter
        )
    if policy is not None:
        raise ConfigError(f"{type(limiter).__name__} has no named policies; drop policy={policy!r}")
    return _Bound(check, is_async=_is_async_callable(check), inline=_inline(limiter), wrapped=limiter)


def checker_is_async(checker: Checker) -> bool:
    return bool(getattr(checker, "is_async", False)) or _is_async_callable(checker)


def resolve_sync(checker: Checker, key: str, cost: int) -> Decision:
    """Call ``checker`` from synchronous code; an async checker there is a clear TypeError."""
    outcome = checker(key, cost=cost)
    if inspect.isawaitable(outcome):
        close = getattr(outcome, "close", None)
        if close is not None:
            close()  # no "coroutine was never awaited" warning
        raise TypeError(
            "an async checker was called from synchronous code: use a sync limiter (e.g. ServiceBackend, "
            "Limiter, RedisBackend) with a sync function or adapter, or make the function async"
        )
    return outcome


async def resolve_async(checker: Checker, key: str, cost: int, *, is_async: bool) -> Decision:
    """Call ``checker`` from async code without blocking the loop: await an async checker, run a sync
    one in a worker thread, or directly when it does no I/O (``inline``)."""
    if is_async:
        return await cast("Awaitable[Decision]", checker(key, cost=cost))
    if getattr(checker, "inline", False):
        return resolve_sync(checker, key, cost)
    return await asyncio.to_thread(resolve_sync, checker, key, cost)


def rate_limit(
    checker: Checker | Any, *, key: Callable[..., str], cost: int = 1, policy: str | None = None
) -> Callable[[F], F]:
    """Decorate a sync or ``async def`` function so each call is admitted first.

    ``key`` derives the limit key from the call's arguments; a denial raises :class:`RateLimited` and the
    body does not run. ``checker`` is a checker or any limiter (``policy=`` names the policy of a service
    backend)::

        @rate_limit(bind_policy(backend, "api"), key=lambda user_id: user_id)
        def handle(user_id): ...
    """
    bound = as_checker(checker, policy)
    is_async = checker_is_async(bound)

    def decorate(fn: F) -> F:
        if _is_async_callable(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                decision = await resolve_async(bound, key(*args, **kwargs), cost, is_async=is_async)
                if not decision.allowed:
                    raise RateLimited(decision)
                return await fn(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            decision = resolve_sync(bound, key(*args, **kwargs), cost)
            if not decision.allowed:
                raise RateLimited(decision)
            return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
