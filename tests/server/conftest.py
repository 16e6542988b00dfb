"""Fixtures for the server tests (the launchers themselves live in ``tests/_support/server.py``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests._support.server import STORE_KINDS, Served, Starter, start


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Server subprocesses a test started (append them): killed if still running, then reaped."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=20)


@pytest.fixture
def start_server() -> Iterator[Starter]:
    """``start_server(policies, store=None, clock=None, fail="open")`` -> :class:`Served` (closed after)."""
    running: list[Served] = []

    def run(*args: Any, **kwargs: Any) -> Served:
        served = start(*args, **kwargs)
        running.append(served)
        return served

    yield run
    for s in running:
        s.close()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]
