"""Shared pieces of the sync and async service clients: messages, fail mode, reply conversion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._errors import ConfigError
from .._types import Decision, Forecast
from ._errors import ServiceUnavailableError

__all__ = ["ClientFail", "LeaseBeat", "decision", "forecast", "synthesized", "validate_fail"]

ClientFail = Literal["open", "closed"] | None


def validate_fail(fail: Any) -> ClientFail:
    if fail not in (None, "open", "closed"):
        raise ConfigError(f"fail must be None (raise), 'open' or 'closed', got {fail!r}")
    return fail  # type: ignore[no-any-return]


def decision(msg: Any) -> Decision:
    return Decision(msg.allowed, msg.limit, msg.remaining, msg.reset_at, msg.retry_after_ms)


def forecast(msg: Any) -> Forecast:
    return Forecast(msg.spendable_now, msg.next_replenish_at, msg.full_at)


def synthesized(fail: ClientFail, error: ServiceUnavailableError) -> Decision:
    """The client-side fail decision for an unreachable service: admit (open) or deny (closed).

    The client does not know the policy's limit, so ``limit`` and ``remaining`` are 0 and the times 0.
    """
    if fail is None:
        raise error
    return Decision(fail == "open", 0, 0, 0, 0)


@dataclass(frozen=True)
class LeaseBeat:
    """A Heartbeat reply: leases still held (renewed), leases gone, and the next deadline (epoch ms)."""

    live_ids: Sequence[str]
    reclaimed_ids: Sequence[str]
    next_deadline: int
