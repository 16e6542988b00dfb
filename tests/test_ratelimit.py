"""rate_limit / RateLimited / bind_policy / as_checker over every kind of limiter, sync and async, and the
exception tree throttlekit-py code catches."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import throttlekit as tk
from tests._support.web import KINDS, OUTAGES, dead_limiter, limiter_of
from throttlekit import errors


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as s:
        yield s


@pytest.mark.parametrize("kind", KINDS)
def test_the_decorator_admits_then_raises_rate_limited(kind: str, stack: contextlib.ExitStack) -> None:
    limiter, policy = limiter_of(kind, stack)
    calls: list[str] = []

    @tk.rate_limit(limiter, key=lambda user: user, policy=policy)
    def handle(user: str) -> str:
        calls.append(user)
        return f"hi {user}"

    assert handle("ann") == "hi ann" and handle("ann") == "hi ann"
    with pytest.raises(tk.RateLimited) as info:
        handle("ann")
    assert calls == ["ann", "ann"]  # the body did not run on the denial
    assert handle("bob") == "hi bob"
    denial = info.value
    assert not denial.decision.allowed and denial.retry_after_ms > 0
    assert denial.reset_at == denial.decision.reset_at
    assert "retry after" in str(denial)
    assert not isinstance(denial, tk.ThrottleKitError)  # a denial is not a fault


def test_async_functions_and_async_limiters(stack: contextlib.ExitStack) -> None:
    limiter = tk.AsyncLimiter(tk.FixedWindow(1, "1m"), clock=tk.ManualClock(60_000))

    @tk.rate_limit(limiter, key=lambda k: k, cost=1)
    async def work(k: str) -> str:
        return k

    async def run() -> list[Any]:
        first = await work("a")
        with pytest.raises(tk.RateLimited):
            await work("a")
        return [first, await work("b")]

    assert asyncio.run(run()) == ["a", "b"]


def test_a_sync_limiter_on_an_async_function_does_not_block_the_loop_thread(
    stack: contextlib.ExitStack,
) -> None:
    limiter, _ = limiter_of("redis", stack)
    threads: list[int] = []
    check = limiter.check

    def spy(key: str, cost: int = 1) -> tk.Decision:
        threads.append(threading.get_ident())
        return check(key, cost)

    limiter.check = spy  # type: ignore[method-assign]

    @tk.rate_limit(limiter, key=lambda k: k)
    async def work(k: str) -> str:
        return k

    async def run() -> tuple[str, int]:
        return await work("k"), threading.get_ident()

    result, loop_thread = asyncio.run(run())
    assert result == "k" and threads and threads[0] != loop_thread  # Redis I/O ran in a worker thread


def test_an_embedded_memory_limiter_runs_on_the_loop_thread() -> None:
    limiter = tk.Limiter(tk.FixedWindow(5, "1m"))
    checker = tk.as_checker(limiter)
    assert getattr(checker, "inline", False) is True  # the memory store does no I/O: no thread hop


def test_an_async_checker_on_a_sync_function_is_a_clear_type_error() -> None:
    limiter = tk.AsyncLimiter(tk.FixedWindow(1, "1m"))

    @tk.rate_limit(limiter, key=lambda: "k")
    def sync_work() -> None: ...

    with pytest.raises(TypeError, match="async checker was called from synchronous code"):
        sync_work()


def test_bind_policy_keeps_the_backend_sync_or_async(stack: contextlib.ExitStack) -> None:
    from tests._support.server import start

    served = start({"api": {"strategy": "fixedWindow", "limit": 1, "period": "1m"}})
    stack.callback(served.close)
    sync = tk.bind_policy(stack.enter_context(tk.ServiceBackend(served.target, timeout=10)), "api")
    assert sync("k").allowed and not sync("k", cost=1).allowed

    async def run() -> list[bool]:
        async with tk.AsyncServiceBackend(served.target, timeout=10) as backend:
            checker = tk.bind_policy(backend, "api")
            assert asyncio.iscoroutinefunction(checker)
            return [(await checker("j")).allowed, (await checker("j")).allowed]

    assert asyncio.run(run()) == [True, False]
    with pytest.raises(tk.ConfigError, match="policy must be a non-empty string"):
        tk.bind_policy(tk.ServiceBackend(served.target), "")


def test_as_checker_refuses_what_it_cannot_use() -> None:
    with pytest.raises(tk.ConfigError, match="expected a checker or a limiter"):
        tk.as_checker(42)
    with pytest.raises(tk.ConfigError, match="pass policy="):
        tk.as_checker(tk.ServiceBackend("127.0.0.1:1"))
    with pytest.raises(tk.ConfigError, match="has no named policies"):
        tk.as_checker(tk.Limiter(tk.Gcra(1, 1000)), policy="api")


@pytest.mark.parametrize("outage", OUTAGES)
def test_one_except_catches_a_store_outage_and_a_server_outage(
    outage: str, stack: contextlib.ExitStack
) -> None:
    from tests._support.redis_server import free_port

    dead_redis = dead_limiter(outage, stack)
    dead_server = stack.enter_context(tk.ServiceBackend(f"127.0.0.1:{free_port()}", timeout=5))
    for call in (lambda: dead_redis.check("k"), lambda: dead_server.check("api", "k")):
        with pytest.raises(errors.ServiceUnavailableError):
            call()


def test_the_errors_module_is_the_one_tree() -> None:
    assert errors.ThrottleKitError is tk.ThrottleKitError
    assert issubclass(errors.StoreError, errors.ServiceUnavailableError)
    assert issubclass(errors.OperationNotSupportedError, errors.NotSupportedError)
    assert issubclass(errors.PolicyNotFoundError, LookupError)
    assert issubclass(errors.InvalidRequestError, ValueError)
    from throttlekit.client import ServiceUnavailableError

    assert ServiceUnavailableError is errors.ServiceUnavailableError
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.ThrottleKitError)
