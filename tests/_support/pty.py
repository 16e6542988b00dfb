"""A command on a pseudo-terminal: what ``throttlekit-server --tui`` needs to believe it has a terminal.

:class:`OnPty` starts the command with stdin, stdout and stderr on the slave side of a new pty of a given
size (its own session, so the pty is its controlling terminal), drains the master side on a thread (a
full pty would block the dashboard's writes) and keeps what it printed, escape sequences stripped, for
:meth:`OnPty.wait_for`. Used by the Lens tests and by ``scripts/bench_grpc.py --stores memory+tui``.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Sequence

__all__ = ["OnPty"]

_ESCAPES = re.compile(
    rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78DEHMNOZc])"
)


class OnPty:
    """``argv`` running on a ``cols`` x ``rows`` pseudo-terminal."""

    def __init__(
        self, argv: Sequence[str], *, cols: int = 100, rows: int = 30, env: dict[str, str] | None = None
    ) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.master = master
        self.proc = subprocess.Popen(
            list(argv), stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env
        )
        os.close(slave)
        self._raw = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain, name="pty-drain", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every slave end closed (the process and its children exited)
                return
            if not chunk:
                return
            with self._lock:
                self._raw += chunk

    def text(self) -> str:
        """Everything printed so far, escape sequences removed."""
        with self._lock:
            raw = bytes(self._raw)
        return _ESCAPES.sub(b"", raw).decode("utf-8", "replace")

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first match of regex ``pattern`` in the output; fails with the output after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text())
            if found:
                return found
            if time.monotonic() > deadline or (self.proc.poll() is not None and not self._reader.is_alive()):
                raise AssertionError(f"{pattern!r} not seen in {timeout} s; output:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the process and everything it started on the pty (its own session and group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def send(self, data: bytes) -> None:
        """Type ``data`` on the terminal."""
        os.write(self.master, data)

    def close(self, timeout: float = 20.0) -> int:
        """Wait for the process (killing it after ``timeout``); returns its exit code."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        try:
            os.close(self.master)
        except OSError:
            pass
        return code
