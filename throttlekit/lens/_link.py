"""The dashboard runs in its own process; this is the link between it and the server.

``throttlekit-server --tui`` starts ``python -m throttlekit.lens --link-fd N`` on the same terminal and
keeps one end of a Unix socket pair. The dashboard asks, four times a second, for the telemetry hub's
snapshot; the server answers on its event loop between decisions (building the snapshot is O(policies +
rings), its JSON a few hundred microseconds). Drawing, Textual's compositor and the terminal I/O all
happen in the dashboard's process, on the other core: the server pays for the snapshot, never for a frame.

Wire: one JSON object per line each way. Requests ``{"op": "snapshot" | "replay" | "what_if" |
"plan"}``; replies ``{"ok": <payload>}`` or ``{"error": "<message>"}``. ``what_if`` and ``plan`` run
their replays on a worker thread (they can take a second) over inputs copied on the loop.

Lifetimes: the server watches the child. Exit 0 (``q``, ``Ctrl-C``) means "stop the server": it drains
and stops as on SIGTERM. Any other exit (the dashboard crashed) is logged and the server keeps serving
without it. A SIGTERM or SIGINT to the server first closes the dashboard (SIGTERM to the child, which
restores the terminal), then drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "CLOSE_S",
    "REPLY_TIMEOUT_S",
    "Dashboard",
    "LinkClient",
    "LinkClosed",
    "Panels",
    "held_logs",
    "serve_link",
    "show_until_closed",
]

log = logging.getLogger("throttlekit.server")

#: Seconds the dashboard waits for one reply before keeping its previous frame.
REPLY_TIMEOUT_S = 1.0
#: Seconds the server gives the dashboard to restore the terminal and exit before killing it.
CLOSE_S = 3.0
#: A request line longer than this closes the link (the child is ours; this bounds a bug, not an attack).
_MAX_LINE = 64 * 1024


class Panels(Protocol):
    """The TUI-only panels (What-If Replay, Plan) a server offers its dashboard.

    ``replay`` is cheap and runs on the event loop. ``prepare_what_if`` / ``prepare_plan`` run on the loop
    too but only copy their inputs; the function they return does the replay on a worker thread (it must
    not touch state the loop mutates). ``None`` from either means "not configured"."""

    def replay(self) -> dict[str, Any] | None: ...

    def prepare_what_if(self) -> Callable[[], dict[str, Any]] | None: ...

    def prepare_plan(self) -> Callable[[], dict[str, Any]] | None: ...


@dataclass
class Dashboard:
    """The running dashboard child, as the server holds it."""

    process: asyncio.subprocess.Process
    serving: asyncio.Task[None]
    sock: socket.socket

    @classmethod
    async def launch(
        cls,
        snapshot: Callable[[], dict[str, Any]],
        panels: Panels | None = None,
        *,
        argv: list[str] | None = None,
    ) -> Dashboard:
        """Start the dashboard on this process's terminal and answer it with ``snapshot`` (the hub's)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            cmd = argv or [sys.executable, "-m", "throttlekit.lens", "--link-fd", str(theirs.fileno())]
            process = await asyncio.create_subprocess_exec(*cmd, pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        serving = asyncio.ensure_future(serve_link(mine, snapshot, panels))
        return cls(process, serving, mine)

    async def wait(self) -> int:
        """The dashboard's exit code, when it exits."""
        return await self.process.wait()

    async def aclose(self, timeout: float = CLOSE_S) -> None:
        """Ask the dashboard to exit (SIGTERM: it restores the terminal), kill it after ``timeout``."""
        if self.process.returncode is None:
            try:
                self.process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(self.process.wait(), timeout)
            except (ProcessLookupError, asyncio.TimeoutError):
                if self.process.returncode is None:
                    self.process.kill()
                    await self.process.wait()
        self.serving.cancel()
        try:
            await self.serving
        except (asyncio.CancelledError, Exception):
            pass
        self.sock.close()


async def serve_link(
    sock: socket.socket, snapshot: Callable[[], dict[str, Any]], panels: Panels | None = None
) -> None:
    """Answer the dashboard at the other end of ``sock`` until it closes the link (on the server's loop:
    ``snapshot`` and the panels are read between decisions)."""
    reader, writer = await asyncio.open_connection(sock=sock, limit=_MAX_LINE)
    try:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):  # over _MAX_LINE
                return
            if not line:
                return
            ident: Any = None
            try:
                request = json.loads(line)
                ident = request.get("id")
                payload = await _answer(request.get("op"), snapshot, panels)
                reply = {"id": ident, "ok": payload}
            except Exception as exc:  # one bad request never ends the link
                reply = {"id": ident, "error": f"{type(exc).__name__}: {exc}"}
            writer.write(json.dumps(reply, separators=(",", ":"), default=str).encode() + b"\n")
            await writer.drain()
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()


async def _answer(op: Any, snapshot: Callable[[], dict[str, Any]], panels: Panels | None) -> Any:
    if op == "snapshot":
        return snapshot()
    if op == "replay":
        return panels.replay() if panels is not None else None
    if op in ("what_if", "plan"):
        if panels is None:
            return None
        job = panels.prepare_what_if() if op == "what_if" else panels.prepare_plan()
        return None if job is None else await asyncio.to_thread(job)
    raise ValueError(f"unknown op {op!r}; expected snapshot, replay, what_if or plan")


class LinkClosed(RuntimeError):
    """The server's end of the link is gone (it exited, or was killed): the dashboard exits too."""


class LinkClient:
    """The dashboard's end: one request at a time, each bounded by ``timeout`` seconds. Requests carry an
    id, so a reply that arrives after its request timed out is skipped, never taken for the next one."""

    def __init__(self, fd: int, timeout: float = REPLY_TIMEOUT_S) -> None:
        self._sock = socket.socket(fileno=fd)
        self._timeout = timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock: asyncio.Lock | None = None
        self._next = 0

    async def request(self, op: str, timeout: float | None = None) -> Any:
        """The server's answer to ``op``; raises ``RuntimeError`` on an error reply or a closed link and
        ``asyncio.TimeoutError`` when the server does not answer in time."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._streams is None:
                self._streams = await asyncio.open_connection(sock=self._sock, limit=2**26)
            reader, writer = self._streams
            self._next += 1
            ident = self._next
            try:
                writer.write(json.dumps({"id": ident, "op": op}).encode() + b"\n")
                await writer.drain()
                reply = await asyncio.wait_for(self._reply(reader, ident), timeout or self._timeout)
            except (ConnectionError, BrokenPipeError) as exc:  # the server's end is gone
                raise LinkClosed(f"the dashboard link broke: {exc}") from exc
            if "error" in reply:
                raise RuntimeError(reply["error"])
            return reply.get("ok")

    @staticmethod
    async def _reply(reader: asyncio.StreamReader, ident: int) -> dict[str, Any]:
        while True:
            line = await reader.readline()
            if not line:
                raise LinkClosed("the server closed the dashboard link")
            reply = json.loads(line)
            if isinstance(reply, dict) and reply.get("id") == ident:
                return reply

    async def aclose(self) -> None:
        """Close the link from the loop that used it (the server's end then returns)."""
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
        self._sock.close()

    def close(self) -> None:
        """Close the link (the server's end then returns); callable after the app's loop has closed."""
        if self._streams is not None:
            try:
                self._streams[1].close()
            except RuntimeError:  # its event loop is already closed: close the socket itself
                pass
        self._sock.close()


def fd_is_tty(*fds: int) -> bool:
    """Whether every one of ``fds`` is a terminal (the dashboard needs stdin and stdout)."""
    return all(os.isatty(fd) for fd in fds)


@contextlib.contextmanager
def held_logs(limit: int = 1000) -> Iterator[None]:
    """While the dashboard owns the terminal, log records wait here (the last ``limit``) instead of being
    written over the frame; on exit they go to the handlers they were meant for, in order."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    held: deque[logging.LogRecord] = deque(maxlen=limit)

    class Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.append(record)

    hold = Hold()
    for h in handlers:
        root.removeHandler(h)
    root.addHandler(hold)
    try:
        yield
    finally:
        root.removeHandler(hold)
        for h in handlers:
            root.addHandler(h)
        for record in held:
            root.handle(record)


async def show_until_closed(
    snapshot: Callable[[], dict[str, Any]], stop: asyncio.Event, panels: Panels | None = None
) -> int | None:
    """Run the dashboard on this terminal until it exits (its exit code) or ``stop`` is set (then close it
    first, so the terminal is restored before the server drains; returns None)."""
    with held_logs():
        lens = await Dashboard.launch(snapshot, panels)
        exited = asyncio.ensure_future(lens.wait())
        stopping = asyncio.ensure_future(stop.wait())
        by_itself = False
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            by_itself = exited.done()
        finally:
            stopping.cancel()
            await lens.aclose()
    return exited.result() if by_itself else None
