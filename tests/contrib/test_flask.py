"""The Flask extension through Flask's test client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from flask import Flask, request

from tests._support.web import KINDS, OUTAGES, dead_limiter, limiter_of
from throttlekit import FixedWindow, Limiter
from throttlekit.contrib.flask import ThrottleKit


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as s:
        yield s


@pytest.mark.parametrize("kind", KINDS)
def test_allowed_requests_pass_and_the_one_over_the_limit_gets_429(
    kind: str, stack: contextlib.ExitStack
) -> None:
    limiter, policy = limiter_of(kind, stack)
    app = Flask(__name__)
    tk = ThrottleKit(app, checker=limiter, policy=policy)

    @app.get("/")
    @tk.limit()
    def index() -> str:
        return "hello"

    client = app.test_client()
    responses = [client.get("/") for _ in range(3)]
    assert app.extensions["throttlekit"] is tk
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].get_data(as_text=True) == "hello"
    assert [r.headers["RateLimit-Remaining"] for r in responses] == ["1", "0", "0"]
    assert 0 < int(responses[2].headers["Retry-After"]) <= 60


def test_route_overrides_key_and_init_app(stack: contextlib.ExitStack) -> None:
    default, _ = limiter_of("embedded", stack, limit=3)
    strict, _ = limiter_of("embedded", stack, limit=1)
    tk = ThrottleKit(checker=default, style="legacy")
    app = Flask(__name__)
    tk.init_app(app)

    @app.get("/default")
    @tk.limit()
    def default_route() -> str:
        return "d"

    @app.get("/strict")
    @tk.limit(checker=strict, key=lambda: request.headers.get("X-User", "anon"))
    def strict_route() -> str:
        return "s"

    @app.get("/heavy")
    @tk.limit(cost=3)
    def heavy_route() -> str:
        return "h"

    client = app.test_client()
    assert [client.get("/strict", headers={"X-User": "a"}).status_code for _ in range(2)] == [200, 429]
    assert client.get("/strict", headers={"X-User": "b"}).status_code == 200
    assert client.get("/heavy").status_code == 200  # 3 units: the default limit's whole window
    denied = client.get("/default")
    assert denied.status_code == 429 and denied.headers["X-RateLimit-Limit"] == "3"


def tk_limiter() -> Limiter:
    return Limiter(FixedWindow(1, "1m"))


def test_no_checker_is_a_clear_error() -> None:
    app = Flask(__name__)
    tk = ThrottleKit(app)

    @app.get("/")
    @tk.limit()
    def index() -> str:
        return "x"

    app.testing = True
    with pytest.raises(RuntimeError, match="no checker"):  # as throttlekit-py raises it
        app.test_client().get("/")
    limiter = tk.checker = tk_limiter()  # set later: the next request uses it
    assert app.test_client().get("/").status_code == 200
    assert limiter.peek("127.0.0.1").remaining == 0


@pytest.mark.parametrize("outage", OUTAGES)
def test_a_store_outage_fails_open_or_closed_as_chosen(outage: str, stack: contextlib.ExitStack) -> None:
    dead = dead_limiter(outage, stack)
    app = Flask(__name__)
    fail_open = ThrottleKit(app, checker=dead)
    fail_closed = ThrottleKit(checker=dead, on_unavailable="deny")

    @app.get("/open")
    @fail_open.limit()
    def opened() -> str:
        return "served"

    @app.get("/closed")
    @fail_closed.limit()
    def closed() -> str:
        return "served"

    client = app.test_client()
    a, b = client.get("/open"), client.get("/closed")
    assert (a.status_code, a.get_data(as_text=True)) == (200, "served")
    assert "RateLimit-Limit" not in a.headers
    assert b.status_code == 503


def test_headers_can_be_turned_off(stack: contextlib.ExitStack) -> None:
    limiter, _ = limiter_of("embedded", stack, limit=1)
    app = Flask(__name__)
    tk = ThrottleKit(app, checker=limiter, headers_enabled=False)

    @app.get("/")
    @tk.limit()
    def index() -> str:
        return "x"

    client = app.test_client()
    ok, denied = client.get("/"), client.get("/")
    assert (ok.status_code, denied.status_code) == (200, 429)
    assert not any(
        h.startswith(("RateLimit", "Retry-After")) for h in [*ok.headers.keys(), *denied.headers.keys()]
    )
