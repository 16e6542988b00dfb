"""The ASGI middleware through Starlette's TestClient: whole-app and per-route limits, the key function,
streaming bodies untouched, fail open/closed on a store outage."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests._support.web import KINDS, OUTAGES, dead_limiter, limiter_of
from throttlekit.contrib.starlette import ThrottleKitMiddleware


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as s:
        yield s


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def _app(**options: Any) -> Starlette:
    return Starlette(routes=[Route("/", hello)], middleware=[Middleware(ThrottleKitMiddleware, **options)])


@pytest.mark.parametrize("kind", KINDS)
def test_allowed_requests_pass_and_the_one_over_the_limit_gets_429(
    kind: str, stack: contextlib.ExitStack
) -> None:
    limiter, policy = limiter_of(kind, stack)
    with TestClient(_app(checker=limiter, policy=policy, style="legacy")) as client:
        responses = [client.get("/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].text == "hello"
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["1", "0", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "2" for r in responses)
    assert "RateLimit-Limit" not in responses[0].headers
    assert 0 < int(responses[2].headers["Retry-After"]) <= 60
    assert responses[2].json() == {"detail": "rate limit exceeded"}


def test_the_key_function_reads_the_scope(stack: contextlib.ExitStack) -> None:
    limiter, _ = limiter_of("embedded", stack)

    def tenant(scope: Any) -> str:
        return dict(scope["headers"]).get(b"x-tenant", b"none").decode()

    with TestClient(_app(checker=limiter, key=tenant)) as client:
        a = [client.get("/", headers={"x-tenant": "a"}).status_code for _ in range(3)]
        b = client.get("/", headers={"x-tenant": "b"}).status_code
    assert (a, b) == ([200, 200, 429], 200)


def test_per_route_limits_and_streaming_bodies(stack: contextlib.ExitStack) -> None:
    one, _ = limiter_of("embedded", stack, limit=1)
    three, _ = limiter_of("embedded", stack, limit=3)

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk{i};".encode()

        return StreamingResponse(chunks())

    app = Starlette(
        routes=[
            Route("/one", hello, middleware=[Middleware(ThrottleKitMiddleware, checker=one)]),
            Route("/three", stream, middleware=[Middleware(ThrottleKitMiddleware, checker=three)]),
        ]
    )
    with TestClient(app) as client:
        assert [client.get("/one").status_code for _ in range(2)] == [200, 429]
        streamed = [client.get("/three") for _ in range(4)]
    assert [r.status_code for r in streamed] == [200, 200, 200, 429]
    assert streamed[0].text == "chunk0;chunk1;chunk2;"
    assert streamed[0].headers["RateLimit-Remaining"] == "2"


@pytest.mark.parametrize("outage", OUTAGES)
def test_a_store_outage_fails_open_or_closed_as_chosen(outage: str, stack: contextlib.ExitStack) -> None:
    dead = dead_limiter(outage, stack)
    with TestClient(_app(checker=dead)) as client:
        opened = client.get("/")
    with TestClient(_app(checker=dead, on_unavailable="deny")) as client:
        closed = client.get("/")
    assert (opened.status_code, opened.text) == (200, "hello")
    assert closed.status_code == 503 and closed.json() == {"detail": "rate limiter unavailable"}


def test_bad_options_are_refused_when_the_app_is_built(stack: contextlib.ExitStack) -> None:
    from throttlekit import ConfigError, ServiceBackend

    limiter, _ = limiter_of("embedded", stack)
    for options, message in [
        ({"checker": limiter, "on_unavailable": "maybe"}, "on_unavailable must be 'allow' or 'deny'"),
        ({"checker": limiter, "style": "fancy"}, "unknown header style 'fancy'"),
        ({"checker": limiter, "cost": 0}, "cost must be a positive integer"),
        ({"checker": limiter, "policy": "api"}, "has no named policies"),
        ({"checker": stack.enter_context(ServiceBackend("127.0.0.1:1"))}, "pass policy="),
    ]:
        with pytest.raises(ConfigError, match=message):
            ThrottleKitMiddleware(hello, **options)


def test_an_async_limiter_is_awaited_on_the_loop(stack: contextlib.ExitStack) -> None:
    import throttlekit as tk

    clock = tk.ManualClock(120_000)
    two_tier = tk.TwoTierLimiter(tk.FixedWindow(2, "1m"), mode="strict", clock=clock)
    limiter = tk.AsyncLimiter(tk.FixedWindow(2, "1m"), clock=clock)
    for checker in (two_tier, limiter):
        with TestClient(_app(checker=checker)) as client:
            assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]


def test_structured_headers_name_the_policy_and_the_limiter_s_window(stack: contextlib.ExitStack) -> None:
    limiter, _ = limiter_of("embedded", stack)
    with TestClient(_app(checker=limiter, style="structured", policy=None)) as client:
        first = client.get("/")
    assert first.headers["RateLimit-Policy"] == '"default";q=2;w=60'
    assert first.headers["RateLimit"].startswith('"default";r=1;t=')
