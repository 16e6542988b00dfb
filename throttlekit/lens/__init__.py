"""Lens, the live terminal dashboard of ``throttlekit-server --tui`` (the optional ``tui`` extra).

:func:`~throttlekit.lens._frame.render_frame` draws one frame from a telemetry-hub snapshot as pure
text; :class:`~throttlekit.lens._app.LensApp` shows it in the terminal with Textual. See docs/lens.md.
"""

from __future__ import annotations

from ._frame import MIN_COLS, MIN_ROWS, TABS, LensState, render_frame

__all__ = ["MIN_COLS", "MIN_ROWS", "TABS", "LensApp", "LensSource", "LensState", "render_frame"]


def __getattr__(name: str) -> object:
    if name in ("LensApp", "LensSource"):  # Textual loads only when the dashboard is used
        from . import _app

        return getattr(_app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
