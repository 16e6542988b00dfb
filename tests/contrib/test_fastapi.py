"""The FastAPI dependency through FastAPI's TestClient, over an embedded limiter, Redis and the server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from tests._support.web import KINDS, OUTAGES, dead_limiter, limiter_of
from throttlekit import ServiceBackend
from throttlekit.contrib.fastapi import RateLimit, ThrottleKitMiddleware


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as s:
        yield s


def _app(dependency: Any, path: str = "/items") -> FastAPI:
    app = FastAPI()

    @app.get(path, dependencies=[Depends(dependency)])
    async def items() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.mark.parametrize("kind", KINDS)
def test_allowed_requests_pass_and_the_one_over_the_limit_gets_429(
    kind: str, stack: contextlib.ExitStack
) -> None:
    limiter, policy = limiter_of(kind, stack)
    with TestClient(_app(RateLimit(limiter, policy=policy))) as client:
        first, second, third = (client.get("/items") for _ in range(3))
    assert first.status_code == second.status_code == 200
    assert first.json() == {"ok": True}
    assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("2", "1")
    assert second.headers["RateLimit-Remaining"] == "0"
    assert "Retry-After" not in second.headers
    assert third.status_code == 429
    assert third.json() == {"detail": "rate limit exceeded"}
    assert 0 < int(third.headers["Retry-After"]) <= 60
    assert third.headers["RateLimit-Remaining"] == "0"
    assert 0 <= int(third.headers["RateLimit-Reset"]) <= 60


def test_the_key_function_gives_each_caller_its_own_limit(stack: contextlib.ExitStack) -> None:
    limiter, _ = limiter_of("embedded", stack)
    dep = RateLimit(limiter, key=lambda request: request.headers.get("x-user", "anonymous"))
    with TestClient(_app(dep)) as client:
        alice = [client.get("/items", headers={"x-user": "alice"}).status_code for _ in range(3)]
        bob = client.get("/items", headers={"x-user": "bob"}).status_code
    assert alice == [200, 200, 429]
    assert bob == 200


def test_each_route_has_its_own_policy(stack: contextlib.ExitStack) -> None:
    strict, _ = limiter_of("embedded", stack, limit=1)
    loose, _ = limiter_of("embedded", stack, limit=3)
    app = FastAPI()

    @app.get("/strict", dependencies=[Depends(RateLimit(strict))])
    async def strict_route() -> str:
        return "s"

    @app.get("/loose", dependencies=[Depends(RateLimit(loose))])
    async def loose_route() -> str:
        return "l"

    with TestClient(app) as client:
        assert [client.get("/strict").status_code for _ in range(2)] == [200, 429]
        assert [client.get("/loose").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_two_policies_of_one_server(stack: contextlib.ExitStack) -> None:
    from tests._support.server import start

    served = start(
        {
            "login": {"strategy": "fixedWindow", "limit": 1, "period": "1m"},
            "search": {"strategy": "fixedWindow", "limit": 2, "period": "1m"},
        }
    )
    stack.callback(served.close)
    backend = stack.enter_context(ServiceBackend(served.target, timeout=10))
    app = FastAPI()

    @app.post("/login", dependencies=[Depends(RateLimit(backend, policy="login", style="structured"))])
    async def login() -> str:
        return "in"

    @app.get("/search", dependencies=[Depends(RateLimit(backend, policy="search"))])
    async def search() -> str:
        return "found"

    with TestClient(app) as client:
        ok = client.post("/login")
        denied = client.post("/login")
        assert [client.get("/search").status_code for _ in range(3)] == [200, 200, 429]
    assert ok.headers["RateLimit-Policy"] == '"login";q=1'
    assert ok.headers["RateLimit"].startswith('"login";r=0;t=')
    assert denied.status_code == 429 and int(denied.headers["Retry-After"]) > 0


@pytest.mark.parametrize("outage", OUTAGES)
def test_a_store_outage_fails_open_or_closed_as_chosen(outage: str, stack: contextlib.ExitStack) -> None:
    dead = dead_limiter(outage, stack)
    app = FastAPI()

    @app.get("/open", dependencies=[Depends(RateLimit(dead))])
    async def open_route() -> str:
        return "served"

    @app.get("/closed", dependencies=[Depends(RateLimit(dead, on_unavailable="deny"))])
    async def closed_route() -> str:
        return "served"

    with TestClient(app) as client:
        opened = client.get("/open")
        closed = client.get("/closed")
    assert opened.status_code == 200 and opened.json() == "served"
    assert "RateLimit-Limit" not in opened.headers
    assert closed.status_code == 503
    assert closed.json() == {"detail": "rate limiter unavailable"}


def test_an_unreachable_server_fails_open_or_closed(stack: contextlib.ExitStack) -> None:
    from tests._support.redis_server import free_port

    backend = stack.enter_context(ServiceBackend(f"127.0.0.1:{free_port()}", timeout=5))
    app = FastAPI()

    @app.get("/open", dependencies=[Depends(RateLimit(backend, policy="api"))])
    async def open_route() -> str:
        return "served"

    @app.get("/closed", dependencies=[Depends(RateLimit(backend, policy="api", on_unavailable="deny"))])
    async def closed_route() -> str:
        return "served"

    with TestClient(app) as client:
        assert client.get("/open").status_code == 200
        assert client.get("/closed").status_code == 503


def test_the_middleware_limits_the_whole_app(stack: contextlib.ExitStack) -> None:
    limiter, _ = limiter_of("embedded", stack)
    app = FastAPI()
    app.add_middleware(ThrottleKitMiddleware, checker=limiter, style="both")

    @app.get("/a")
    async def a(request: Request) -> str:
        return "a"

    with TestClient(app) as client:
        codes = [client.get("/a").status_code for _ in range(3)]
        last = client.get("/a")
    assert codes == [200, 200, 429]
    assert last.headers["X-RateLimit-Limit"] == "2" and last.headers["RateLimit-Limit"] == "2"
