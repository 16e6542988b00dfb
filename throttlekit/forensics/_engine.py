"""Cold record and replay: a rate strategy's check transform run over a list of arrivals.

Each run gets a private memory store whose clock is set to every arrival's own instant before the
arrival is decided, so a run is a pure function of (strategy, arrivals): the same Lua bytes the server
runs, called through the store's bound fast path (``ScriptStore.bind``), one crossing into Lua per
arrival. Plans (``policy plan``) and What-If Replay both fold two such runs into flips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._loader import DECISION_REPLY, load_manifest, reply_index
from ..stores import MemoryStore
from ..stores.base import join_prefix
from ..strategies import Strategy

__all__ = ["Arrival", "Fold", "fold", "record"]

#: ``(key, cost, at)``: a request for ``cost`` units of ``key`` at epoch-ms ``at``.
Arrival = tuple[str, float, int]
#: A decision as the transform replied it, in :data:`DECISION_REPLY` order.
Reply = tuple[Any, ...]

#: The smallest key bound of a run's store (a run holds every distinct key of its arrivals at most once).
_MIN_KEYS = 1024


class _StepClock:
    """The run's clock: the instant of the arrival being decided (set by :func:`record`, never read
    from the wall). Satisfies :class:`~throttlekit.Clock`."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0

    def now_ms(self) -> int:
        return self.now


def record(strategy: Strategy, prefix: str, arrivals: Sequence[Arrival]) -> list[Reply]:
    """Decide every arrival in order on a fresh store; returns each decision as
    ``(allowed, limit, remaining, reset_at, retry_after_ms)``. Raises
    :class:`~throttlekit.ScriptError` if the transform fails."""
    clock = _StepClock()
    distinct = len({a[0] for a in arrivals})
    store = MemoryStore(clock=clock, max_keys=max(_MIN_KEYS, distinct + 1))
    try:
        transform = strategy.check_transform
        run = store.bind(transform, strategy.params)
        index = reply_index(load_manifest()[transform], DECISION_REPLY)
        kp = join_prefix(prefix)
        out: list[Any] = []  # the bound call's reply tuples
        append = out.append
        for key, cost, at in arrivals:
            clock.now = at
            append(run(kp + key, at, cost))
        if tuple(index) != tuple(range(len(DECISION_REPLY))) or (out and len(out[0]) != len(index)):
            out = [tuple(r[i] for i in index) for r in out]
        return out
    finally:
        store.close()


@dataclass
class Fold:
    """Two runs over the same arrivals, compared step by step (``baseline`` vs ``candidate``)."""

    steps: int = 0
    allow_to_deny: int = 0
    deny_to_allow: int = 0
    divergent: int = 0
    #: key -> [allow->deny, deny->allow], only keys with at least one flip
    keys: dict[str, list[int]] = field(default_factory=dict)

    @property
    def flipped_total(self) -> int:
        return self.allow_to_deny + self.deny_to_allow

    def top(self, k: int) -> list[dict[str, Any]]:
        """The ``k`` keys with most flips (ties by key), as plan rows."""
        ranked = sorted(self.keys.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))[:k]
        return [{"key": key, "allowToDeny": a, "denyToAllow": d, "total": a + d} for key, (a, d) in ranked]


def fold(arrivals: Sequence[Arrival], baseline: Sequence[Reply], candidate: Sequence[Reply]) -> Fold:
    """Count flips of ``allowed`` (direction from that field only) and steps where any field differs."""
    f = Fold(steps=len(arrivals))
    keys = f.keys
    a2d = d2a = div = 0
    for (key, _, _), b, c in zip(arrivals, baseline, candidate):
        if b == c:
            continue
        div += 1
        ba, ca = b[0] == 1, c[0] == 1
        if ba == ca:
            continue
        counts = keys.get(key)
        if counts is None:
            counts = keys[key] = [0, 0]
        if ba:
            a2d += 1
            counts[0] += 1
        else:
            d2a += 1
            counts[1] += 1
    f.allow_to_deny, f.deny_to_allow, f.divergent = a2d, d2a, div
    return f
