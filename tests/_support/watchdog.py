"""A call that must fail fast: it runs on a daemon thread the test waits on for a bounded time, so a
regression that hangs fails the test instead of the run (the thread is left behind)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import throttlekit as tk

__all__ = ["fails_fast"]


def fails_fast(call: Callable[[], Any], match: str, within: float = 5.0) -> tk.StoreError:
    """``call`` raises StoreError (matching) instead of hanging; a watchdog thread bounds the test."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            box["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(within)
    assert not t.is_alive(), f"no answer within {within} s: the call hangs"
    exc = box.get("exc")
    assert isinstance(exc, tk.StoreError), f"expected StoreError, got {exc!r}"
    assert match in str(exc), str(exc)
    return exc
