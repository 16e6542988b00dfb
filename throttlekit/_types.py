"""The answers: :class:`Decision` (the five wire fields) and :class:`Forecast` (three)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Decision", "Forecast", "make_decision"]


@dataclass(frozen=True, slots=True)
class Decision:
    """One admission decision. A denial is a normal result (``allowed=False``), never an exception.

    ``limit``: the effective ceiling (burst for GCRA, capacity for a token bucket, the window quota
    otherwise). ``remaining``: whole units left before the next denial. ``reset_at``: epoch ms when fully
    replenished. ``retry_after_ms``: wait before retrying, 0 when allowed.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    retry_after_ms: int

    def to_dict(self) -> dict[str, int | bool]:
        """The wire/vector shape (camelCase keys, as the golden vectors spell them)."""
        return {
            "allowed": self.allowed,
            "limit": self.limit,
            "remaining": self.remaining,
            "resetAt": self.reset_at,
            "retryAfterMs": self.retry_after_ms,
        }


@dataclass(frozen=True, slots=True)
class Forecast:
    """How many requests of a given cost fit now, and when capacity returns (epoch ms)."""

    spendable_now: int
    next_replenish_at: int
    full_at: int

    def to_dict(self) -> dict[str, int]:
        return {
            "spendableNow": self.spendable_now,
            "nextReplenishAt": self.next_replenish_at,
            "fullAt": self.full_at,
        }


_new = object.__new__
_set_allowed, _set_limit, _set_remaining, _set_reset_at, _set_retry = (
    Decision.__dict__[f].__set__ for f in ("allowed", "limit", "remaining", "reset_at", "retry_after_ms")
)


def make_decision(allowed: bool, limit: int, remaining: int, reset_at: int, retry_after_ms: int) -> Decision:
    """Build a Decision through its slot descriptors: the same object as ``Decision(...)`` at about half
    the cost of the frozen dataclass ``__init__`` (measured 0.26 vs 0.45 us), for the hot paths."""
    d = _new(Decision)
    _set_allowed(d, allowed)
    _set_limit(d, limit)
    _set_remaining(d, remaining)
    _set_reset_at(d, reset_at)
    _set_retry(d, retry_after_ms)
    return d
