"""A redis-server of the test's own (never the shared one): a subprocess on a free port, stoppable,
restartable and configurable (``requirepass``, the DEBUG command, ...), killed in teardown."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time

import pytest
import redis

from .env import IN_CI

__all__ = ["OwnRedis", "free_port"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server subprocess on a fixed port. ``args`` are extra server options, e.g.
    ``("--requirepass", "s3cret")``; ``password`` is what :meth:`client` and the readiness probe use."""

    def __init__(self, *args: str, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if IN_CI:
                pytest.fail("CI=true but redis-server is not installed")
            pytest.skip("redis-server binary not found")
        self.binary = binary
        self.args = args
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=10)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_connect_timeout=0.2
        )
        deadline = time.monotonic() + 10
        while True:  # wait for the port, bounded: this is process start-up, not the behaviour under test
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open, nothing answers (a frozen store; its data survives)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen server: it answers again, with the data it had."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
