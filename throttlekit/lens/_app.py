"""The Lens dashboard as a Textual app: it shows :func:`~throttlekit.lens._frame.render_frame`'s lines,
reads keys, and repaints every 250 ms and on resize.

The app never touches a decision: it reads a :class:`LensSource` (the telemetry hub's snapshot, taken on
the server's own event loop, and the TUI-only replay/plan panels). Textual owns the terminal (alternate
screen, raw input, resize, restoring the terminal on exit) and, in tests, the headless harness
(``App.run_test``) and SVG screenshots.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from ._frame import TABS, LensState, render_frame

__all__ = ["REPAINT_S", "LensApp", "LensSource"]

#: Seconds between repaints.
REPAINT_S = 0.25


@dataclass
class LensSource:
    """Where the dashboard's data comes from.

    ``snapshot``: the hub's ``LensSnapshot`` (may raise: the previous frame stays up). ``what_if``: run
    the configured what-if and return the Replay panel (``None``: replay is off). ``replay``: the Replay
    panel without running anything (shadow rows). ``plan``: run the whole-config plan and return the Plan
    panel (``None``: no candidate)."""

    snapshot: Callable[[], dict[str, Any]]
    what_if: Callable[[], dict[str, Any] | None] | None = None
    replay: Callable[[], dict[str, Any] | None] | None = None
    plan: Callable[[], dict[str, Any] | None] | None = None


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

    def __init__(self, source: LensSource, *, color: bool | None = None) -> None:
        super().__init__()
        self.source = source
        self.state = LensState()
        self.color = "NO_COLOR" not in os.environ if color is None else color
        self.snap: dict[str, Any] = {}
        self.frames = 0
        self.errors = 0
        self.lines: list[Text] = []

    def compose(self) -> ComposeResult:
        yield _Frame(id="frame")

    def on_mount(self) -> None:
        self.refresh_replay()
        self.tick()
        self.set_interval(REPAINT_S, self.tick)

    # -- data -----------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Take a fresh snapshot (unless paused) and repaint."""
        if not self.state.paused:
            try:
                self.snap = self.source.snapshot()
            except Exception:  # the server is busy or closing: keep the last frame up
                self.errors += 1
            else:
                self.state.observe(self.snap)
            if self.state.tab == TABS.index("Replay"):
                self.refresh_replay()
        self.paint()

    def refresh_replay(self) -> None:
        if self.source.replay is not None:
            try:
                self.state.replay = self.source.replay()
            except Exception:
                self.errors += 1

    def paint(self) -> None:
        size = self.size
        self.lines = render_frame(self.snap, self.state, size.width, size.height, color=self.color)
        self.query_one("#frame", _Frame).update(Text("\n").join(self.lines))
        self.frames += 1

    def frame_text(self) -> str:
        """The frame last painted, as plain text (for tests and screenshots)."""
        return "\n".join(line.plain for line in self.lines)

    # -- input ----------------------------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self.paint()

    def action_key(self, name: str) -> None:
        self._press(name)

    def on_key(self, event: events.Key) -> None:
        if event.key in ("tab", "shift+tab", "ctrl+c", "q"):
            return  # bindings
        event.stop()
        self._press(event.key if len(event.key) > 1 else (event.character or event.key))

    def _press(self, name: str) -> None:
        if name == "r":
            self._run_what_if()
        elif name == "P":
            self._run_plan()
        else:
            self.state.key(name, len(self.snap.get("recentDenials") or ()))
        self.paint()

    def _run_what_if(self) -> None:
        if self.source.what_if is not None:
            try:
                self.state.replay = self.source.what_if()
            except Exception as exc:
                self.state.replay = {"result": {"refusal": f"what-if failed: {exc}"}}
        self.state.tab = TABS.index("Replay")

    def _run_plan(self) -> None:
        if self.source.plan is not None:
            try:
                self.state.plan = self.source.plan()
            except Exception as exc:
                self.state.plan = {"candidate": "(error)", "summary": f"plan failed: {exc}"}
        self.state.tab = TABS.index("Plan")
