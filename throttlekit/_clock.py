"""Clocks. Time is an input: every transform takes ``now_ms``; tests drive a :class:`ManualClock`."""

from __future__ import annotations

import time
from typing import Protocol

from ._validate import MAX_SAFE_INTEGER, integer

__all__ = ["SERVER_TIME", "Clock", "ManualClock", "SystemClock"]

#: ``now_ms`` sentinel meaning "the store's clock": Redis ``TIME`` inside Redis, the executor's
#: injected clock under lupa. Not 0, because the golden vectors replay ``now: 0`` literally.
SERVER_TIME = -1


class Clock(Protocol):
    """Anything with ``now_ms() -> int`` (epoch milliseconds)."""

    def now_ms(self) -> int: ...


class SystemClock:
    """Wall clock, integer epoch ms (like JavaScript's ``Date.now()``)."""

    __slots__ = ()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to. ``set`` may go backwards; ``advance`` may not."""

    __slots__ = ("_now",)

    def __init__(self, now_ms: float = 0) -> None:
        self._now = self._valid("now_ms", now_ms)

    @staticmethod
    def _valid(name: str, v: float) -> int:
        return integer(name, v, 0, MAX_SAFE_INTEGER, " (epoch ms)")

    def now_ms(self) -> int:
        return self._now

    def set(self, now_ms: float) -> None:
        """Jump to ``now_ms`` (epoch ms, may be earlier than the current time)."""
        self._now = self._valid("now_ms", now_ms)

    def advance(self, ms: float) -> None:
        """Move forward by ``ms`` milliseconds (>= 0)."""
        self._now = self._valid("now_ms", self._now + self._valid("ms", ms))

    def __repr__(self) -> str:
        return f"ManualClock({self._now})"
