"""The Django decorator and middleware through Django's test Client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=None,
        MIDDLEWARE=["throttlekit.contrib.django.ThrottleKitMiddleware"],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import path

from tests._support.web import KINDS, OUTAGES, dead_limiter, limiter_of
from throttlekit.contrib.django import Ratelimited, rate_limit


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as s:
        yield s


class _Urls:
    """A URLconf object (Django accepts any hashable object with ``urlpatterns``)."""

    def __init__(self, routes: tuple[Any, ...]) -> None:
        self.urlpatterns = list(routes)


def _client(*routes: Any) -> Iterator[Client]:
    with override_settings(ROOT_URLCONF=_Urls(routes)):
        yield Client()


def hello(request: Any) -> HttpResponse:
    return HttpResponse("hello")


@pytest.mark.parametrize("kind", KINDS)
def test_allowed_requests_pass_and_the_one_over_the_limit_gets_429(
    kind: str, stack: contextlib.ExitStack
) -> None:
    limiter, policy = limiter_of(kind, stack)
    view = rate_limit(limiter, policy=policy)(hello)
    for client in _client(path("", view)):
        responses = [client.get("/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].content == b"hello"
    assert [r.headers["RateLimit-Remaining"] for r in responses] == ["1", "0", "0"]
    assert 0 < int(responses[2].headers["Retry-After"]) <= 60
    assert responses[2].content == b"rate limit exceeded"


def test_without_the_middleware_a_denial_is_django_s_403(stack: contextlib.ExitStack) -> None:
    limiter, _ = limiter_of("embedded", stack, limit=1)
    view = rate_limit(limiter)(hello)
    with override_settings(MIDDLEWARE=[]):
        for client in _client(path("", view)):
            codes = [client.get("/").status_code for _ in range(2)]
    assert codes == [200, 403]
    assert issubclass(Ratelimited, django.core.exceptions.PermissionDenied)


def test_block_false_lets_the_view_decide(stack: contextlib.ExitStack) -> None:
    limiter, _ = limiter_of("embedded", stack, limit=1)
    seen: list[Any] = []

    @rate_limit(limiter, block=False)
    def view(request: Any) -> HttpResponse:
        seen.append(request.throttlekit_decision.allowed)
        return HttpResponse("degraded" if not request.throttlekit_decision.allowed else "full")

    for client in _client(path("", view)):
        bodies = [client.get("/").content for _ in range(2)]
    assert bodies == [b"full", b"degraded"] and seen == [True, False]


def test_key_function_and_per_view_policies(stack: contextlib.ExitStack) -> None:
    strict, _ = limiter_of("embedded", stack, limit=1)
    loose, _ = limiter_of("embedded", stack, limit=3)
    by_user = rate_limit(strict, key=lambda request: request.headers.get("X-User", "anon"))(hello)
    for client in _client(path("strict", by_user), path("loose", rate_limit(loose)(hello))):
        alice = [client.get("/strict", headers={"X-User": "alice"}).status_code for _ in range(2)]
        bob = client.get("/strict", headers={"X-User": "bob"}).status_code
        loose_codes = [client.get("/loose").status_code for _ in range(4)]
    assert (alice, bob) == ([200, 429], 200)
    assert loose_codes == [200, 200, 200, 429]


def test_the_header_style_setting(stack: contextlib.ExitStack) -> None:
    limiter, _ = limiter_of("embedded", stack, limit=1)
    view = rate_limit(limiter, style="both")(hello)
    with override_settings(THROTTLEKIT_HEADER_STYLE="legacy"):
        for client in _client(path("", view)):
            ok, denied = client.get("/"), client.get("/")
    assert ok.headers["RateLimit-Limit"] == ok.headers["X-RateLimit-Limit"] == "1"
    assert denied.status_code == 429 and "X-RateLimit-Reset" in denied.headers
    assert "RateLimit-Limit" not in denied.headers  # the middleware renders the 429 in the setting's style


@pytest.mark.parametrize("outage", OUTAGES)
def test_a_store_outage_fails_open_or_closed_as_chosen(outage: str, stack: contextlib.ExitStack) -> None:
    dead = dead_limiter(outage, stack)
    decisions: list[Any] = []

    @rate_limit(dead, block=False)
    def open_view(request: Any) -> HttpResponse:
        decisions.append(request.throttlekit_decision)
        return HttpResponse("served")

    closed_view = rate_limit(dead, on_unavailable="deny")(hello)
    for client in _client(path("open", open_view), path("closed", closed_view)):
        opened, closed = client.get("/open"), client.get("/closed")
    assert (opened.status_code, opened.content, decisions) == (200, b"served", [None])
    assert "RateLimit-Limit" not in opened.headers
    assert (closed.status_code, closed.content) == (503, b"rate limiter unavailable")
