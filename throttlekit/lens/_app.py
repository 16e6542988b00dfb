"""The Lens dashboard as a Textual app: it shows :func:`~throttlekit.lens._frame.render_frame`'s lines,
reads keys, and repaints every 250 ms and on resize.

The app never touches a decision: it reads a :class:`LensSource` (the telemetry hub's snapshot, taken on
the server's own event loop, and the TUI-only replay/plan panels). Textual owns the terminal (alternate
screen, raw input, resize, restoring the terminal on exit) and, in tests, the headless harness
(``App.run_test``) and SVG screenshots.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from ._frame import TABS, LensState, render_frame
from ._link import LinkClient, LinkClosed

__all__ = ["REPAINT_S", "LensApp", "LensSource"]

#: Seconds between repaints.
REPAINT_S = 0.25


_Fetch = Callable[[], Awaitable[Any]]


@dataclass
class LensSource:
    """Where the dashboard's data comes from (each an async call; a failure keeps the last frame up).

    ``snapshot``: the hub's ``LensSnapshot``. ``replay``: the Replay panel as it stands (shadow rows).
    ``what_if``: run the configured what-if, return the Replay panel. ``plan``: run the whole-config
    plan, return the Plan panel. ``None`` (or a ``None`` answer): not configured."""

    snapshot: _Fetch
    replay: _Fetch | None = None
    what_if: _Fetch | None = None
    plan: _Fetch | None = None
    #: Called once when the dashboard exits (closes the link).
    close: _Fetch | None = None

    @classmethod
    def over_link(cls, link: LinkClient) -> LensSource:
        """The dashboard process's source: every call is a request to the server over the link."""

        def op(name: str, timeout: float | None = None) -> _Fetch:
            return lambda: link.request(name, timeout)

        return cls(op("snapshot"), op("replay"), op("what_if", 60.0), op("plan", 120.0), link.aclose)

    @classmethod
    def local(cls, snapshot: Callable[[], dict[str, Any]]) -> LensSource:
        """A source reading ``snapshot`` in this process (tests, embedding)."""

        async def fetch() -> dict[str, Any]:
            return snapshot()

        return cls(fetch)


class _Frame(Static):
    """The whole screen: one precomputed frame."""

    DEFAULT_CSS = "_Frame { width: 100%; height: 100%; padding: 0; border: none; }"


class LensApp(App[None]):
    """``throttlekit-server --tui``: the eight views over a :class:`LensSource`."""

    CSS = "Screen { overflow: hidden; padding: 0; }"
    ENABLE_COMMAND_PALETTE = False
    # Tab/Shift-Tab would move focus; Ctrl-C would be Textual's copy/quit hint: all are the dashboard's.
    BINDINGS = [
        Binding("tab", "key('tab')", show=False, priority=True),
        Binding("shift+tab", "key('shift+tab')", show=False, priority=True),
        Binding("ctrl+c", "quit", show=False, priority=True),
        Binding("q", "quit", show=False, priority=True),
    ]

    def __init__(
        self, source: LensSource, *, color: bool | None = None, exit_on_sigterm: bool = False
    ) -> None:
        super().__init__()
        self.exit_on_sigterm = exit_on_sigterm
        #: Set when SIGTERM closed the dashboard (the server is closing it), not a key.
        self.terminated = False
        self.source = source
        self.state = LensState()
        self.color = "NO_COLOR" not in os.environ if color is None else color
        self.snap: dict[str, Any] = {}
        self.frames = 0
        self.errors = 0
        self.lines: list[Text] = []
        self._busy = False

    def compose(self) -> ComposeResult:
        yield _Frame(id="frame")

    async def on_mount(self) -> None:
        if self.exit_on_sigterm:  # the server closes its dashboard with SIGTERM: restore the terminal, exit
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._on_sigterm)
        await self.refresh_replay()
        await self.tick()
        self.set_interval(REPAINT_S, self.tick)

    async def on_unmount(self) -> None:
        if self.source.close is not None:
            try:
                await self.source.close()
            except Exception:
                self.errors += 1

    def _on_sigterm(self) -> None:
        self.terminated = True
        self.exit()

    # -- data -----------------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Take a fresh snapshot (unless paused) and repaint; a tick still waiting skips this one."""
        if self._busy:
            return
        self._busy = True
        try:
            if not self.state.paused:
                try:
                    snap = await self.source.snapshot()
                except LinkClosed:  # the server is gone (killed, crashed): nothing left to show
                    self.exit(return_code=4)
                    return
                except Exception:  # the server is busy or closing: keep the last frame up
                    self.errors += 1
                else:
                    if isinstance(snap, dict):
                        self.snap = snap
                        self.state.observe(snap)
                if self.state.tab == TABS.index("Replay"):
                    await self.refresh_replay()
            self.paint()
        finally:
            self._busy = False

    async def refresh_replay(self) -> None:
        if self.source.replay is not None:
            try:
                self.state.replay = await self.source.replay()
            except Exception:
                self.errors += 1

    def paint(self) -> None:
        """Render the frame; nothing once the frame is gone (a tick that was waiting on a snapshot while
        the app closed: painting then would crash the exit with ``NoMatches``)."""
        frames = self.query("#frame").results(_Frame)
        frame = next(frames, None)
        if frame is None:
            return
        size = self.size
        self.lines = render_frame(self.snap, self.state, size.width, size.height, color=self.color)
        frame.update(Text("\n").join(self.lines))
        self.frames += 1

    def frame_text(self) -> str:
        """The frame last painted, as plain text (for tests and screenshots)."""
        return "\n".join(line.plain for line in self.lines)

    # -- input ----------------------------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self.paint()

    async def action_key(self, name: str) -> None:
        await self._press(name)

    async def on_key(self, event: events.Key) -> None:
        if event.key in ("tab", "shift+tab", "ctrl+c", "q"):
            return  # bindings
        event.stop()
        await self._press(event.key if len(event.key) > 1 else (event.character or event.key))

    async def _press(self, name: str) -> None:
        if name == "r":
            self.state.tab = TABS.index("Replay")
            self.paint()
            if self.source.what_if is not None:
                try:
                    answer = await self.source.what_if()
                except Exception as exc:
                    answer = {"result": {"refusal": f"what-if failed: {exc}"}}
                if isinstance(answer, dict):
                    self.state.what_if = answer.get("result")
                    self.state.replay = answer
        elif name == "P":
            self.state.tab = TABS.index("Plan")
            self.paint()
            if self.source.plan is not None:
                try:
                    self.state.plan = await self.source.plan()
                except Exception as exc:
                    self.state.plan = {"candidate": "(error)", "summary": f"plan failed: {exc}"}
        else:
            self.state.key(name, len(self.snap.get("recentDenials") or ()))
        self.paint()
