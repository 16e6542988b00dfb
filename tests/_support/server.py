"""The server launchers: an in-process gRPC server on an ephemeral port over the memory store or Redis
(:class:`Served`, the ``start_server`` fixture's product), and a ``throttlekit-server`` subprocess
(:func:`launch`). Redis comes from ``THROTTLEKIT_TEST_REDIS_URL``; off CI an unreachable Redis falls back
to fakeredis (async, with Lua); under ``CI=true`` it fails the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import grpc
import pytest

import throttlekit as tk
from throttlekit._proto import throttlekit_pb2 as pb
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService, ServerHandle, serve

from .env import IN_CI, REAL_REDIS, REDIS_URL, ROOT
from .stores import unique_prefix

__all__ = [
    "Served",
    "Starter",
    "async_redis_store",
    "config_text",
    "launch",
    "make_store",
    "pb",
    "start",
    "wait_listening",
]

EXAMPLE = ROOT / "examples" / "policies.yaml"


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``throttlekit-server ARGS`` as a subprocess of this interpreter (stdout/stderr piped, text)."""
    code = "import sys; from throttlekit.cli import server_main; sys.exit(server_main())"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        cwd=ROOT,
    )


def wait_listening(proc: subprocess.Popen[str]) -> str:
    """The ``host:port`` of a :func:`launch`-ed server, read from its startup line (the test fails with
    the server's stderr when the line does not come)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, line + (proc.stderr.read() if proc.stderr else "")
    return line.split("listening on ", 1)[1].split(" ", 1)[0]


def async_redis_store(prefix: str | None = None) -> Any:
    """The server's Redis store on the real Redis (unique prefix), or an AsyncRedisStore over fakeredis
    off CI."""
    prefix = prefix or unique_prefix("tks")
    if REAL_REDIS is not None:
        from throttlekit.server import redis_store

        return redis_store(REDIS_URL, prefix)
    if IN_CI:
        pytest.fail(f"CI=true but Redis is unreachable at {REDIS_URL}")
    import fakeredis

    return tk.AsyncRedisStore(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), prefix=prefix)


def config_text(policies: dict[str, dict[str, Any]]) -> str:
    """A JSON policy file for ``policies`` (name -> spec)."""
    return json.dumps({"version": 1, "limiters": policies})


class Served:
    """A running server plus a blocking stub on an insecure channel."""

    def __init__(self, handle: ServerHandle, service: RateLimiterService) -> None:
        self.handle = handle
        self.service = service
        self.target = f"127.0.0.1:{handle.port}"
        self.channel = grpc.insecure_channel(self.target)
        self.stub = pb_grpc.RateLimiterStub(self.channel)

    def check(self, policy: str, key: str, cost: int = 0) -> Any:
        return self.stub.Check(pb.CheckRequest(policy=policy, key=key, cost=cost), timeout=10).decision

    def code_of(self, method: str, request: Any) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as info:
            getattr(self.stub, method)(request, timeout=10)
        return info.value.code()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.channel.close()
        self.handle.close(grace=1)


Starter = Callable[..., Served]


def start(
    policies: dict[str, dict[str, Any]] | str,
    *,
    store: Any = None,
    clock: Any = None,
    fail: str = "open",
    credentials: Any = None,
    host: str = "127.0.0.1",
    fleet_secret: str | None = None,
    region: str = "default",
    **service: Any,
) -> Served:
    """A server for ``policies`` (name -> spec, or policy-file text) on an ephemeral port of ``host``;
    close it after."""
    text = policies if isinstance(policies, str) else config_text(policies)
    service = RateLimiterService(
        load_config(text),
        store=store,
        clock=clock,
        fail=fail,  # type: ignore[arg-type]
        close_store=True,
        region=region,
        **service,
    )
    return Served(serve(service, host, 0, credentials, fleet_secret=fleet_secret), service)


STORE_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
]


def make_store(kind: str, clock: Any = None) -> Any:
    """A fresh store of ``kind`` for one server (the memory store follows ``clock``)."""
    if kind == "memory":
        return tk.MemoryStore(clock=clock) if clock is not None else None
    return async_redis_store()
