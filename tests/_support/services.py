"""Test services for the shared stores: a moto DynamoDB server and a TCP proxy we can stop and restart.

Both run as subprocesses (never threads in the test process: a busy thread next to lupa costs a GIL
switch per Lua call, see ARCHITECTURE.md) on loopback ephemeral ports, and are stopped by their pid.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_tcp(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


#: moto's server, with one request at a time. moto's ``Table.put_item`` reads the current item, evaluates
#: the condition (parsing the expression each time) and only then stores the new item, in Python with no
#: lock, on a threaded server: a thread switch in between lets two puts conditioned on the same version
#: both succeed (seen here as a fixed window admitting more than its limit under load). Real DynamoDB
#: applies a conditional write atomically; serializing requests gives moto that property.
_MOTO = r"""
import sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))
run_simple(sys.argv[1], int(sys.argv[2]), serialized, threaded=True, request_handler=MotoRequestHandler)
"""


class Moto:
    """moto's DynamoDB server on 127.0.0.1:<ephemeral>, serving one request at a time (see ``_MOTO``);
    ``env`` adds environment variables (e.g. ``INITIAL_NO_AUTH_ACTION_COUNT=0`` to check credentials)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MOTO, "127.0.0.1", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **AWS_ENV, **(env or {})},
        )
        deadline = time.monotonic() + 60  # generous: a loaded machine imports moto slowly
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        self._warm_up()

    def _warm_up(self) -> None:
        """One DynamoDB request, so moto loads its DynamoDB backend now (seconds on a loaded machine)
        rather than inside the first test's short client timeouts. Its answer does not matter."""
        request = urllib.request.Request(
            self.endpoint,
            data=b"{}",
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.ListTables",
                "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/dynamodb/aws4_request, "
                "SignedHeaders=host, Signature=0",
            },
        )
        try:
            urllib.request.urlopen(request, timeout=60).close()
        except OSError:  # an HTTP error status (e.g. credentials checked) still loaded the backend
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_PROXY = r"""
import asyncio, sys
listen, target = int(sys.argv[1]), int(sys.argv[2])
match, nth, then = sys.argv[3].encode(), int(sys.argv[4]), sys.argv[5]
seen = 0
async def pump(r, w, client=None):
    # client: set on the client-to-server direction, where the n-th matching chunk is held back
    global seen
    try:
        while data := await r.read(65536):
            if client is not None and match and match in data:
                seen += 1
                if seen == nth:  # this chunk is never forwarded
                    if then == "close":
                        client.close()
                        break
                    await asyncio.Event().wait()  # frozen: open, silent
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def handle(r, w):
    try:
        tr, tw = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        w.close()
        return
    await asyncio.gather(pump(r, tw, w), pump(tr, w))
async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
"""


class Proxy:
    """A TCP forwarder 127.0.0.1:<port> -> 127.0.0.1:<target>, as a subprocess: ``stop()`` kills it (every
    connection through it drops, new ones are refused), ``start()`` brings it back on the same port.

    With ``match``, the ``nth`` chunk a client sends (counted over all connections) that contains it is not
    forwarded, and its connection ``then`` freezes (``"freeze"``: it stays open and nothing more reaches
    the target, as behind a stopped server or a partition) or is closed (``"close"``); every other
    connection goes on as before."""

    def __init__(self, target: int, *, match: bytes = b"", nth: int = 1, then: str = "freeze") -> None:
        assert then in ("freeze", "close")
        self.target = target
        self.trigger = [match.decode(), str(nth), then]
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PROXY, str(self.port), str(self.target), *self.trigger]
        )
        _wait_tcp(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


_DELAY_PROXY = r"""
import asyncio, sys
listen, target, delay, every, match = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5].encode()
seen = 0

async def message(r):
    head = await r.readuntil(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    return head + (await r.readexactly(n) if n else b"")

async def handle(cr, cw):
    global seen
    try:
        while True:
            request = await message(cr)
            tr, tw = await asyncio.open_connection("127.0.0.1", target)
            tw.write(request)
            await tw.drain()
            response = await message(tr)
            tw.close()
            if match in request:
                seen += 1
                if seen % every == 0:
                    await asyncio.sleep(delay)  # applied upstream; the answer arrives late
            cw.write(response)
            await cw.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        cw.close()

async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
"""


class DelayProxy:
    """An HTTP/1.1 forwarder 127.0.0.1:<port> -> 127.0.0.1:<target> (a subprocess) that forwards every
    request at once but holds back the **response** of every ``every``-th request containing ``match``
    for ``delay_s``: the upstream applied it, the client times out and (botocore) retries it."""

    def __init__(self, target: int, *, delay_s: float, every: int, match: str) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DELAY_PROXY, str(self.port), str(target), str(delay_s), str(every), match]
        )
        _wait_tcp(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
