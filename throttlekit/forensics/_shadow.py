"""What-If Replay: shadows of the leaf rate policies fed from live decisions, and the what-if run.

:class:`ReplayShadows` is a decision-tap observer (like capture: no second tap point). After each
Check / CheckMany decision of a shadowed policy it redacts the key and feeds ``(keyRef, cost, now)``
into that policy's :class:`Shadow`: an isolated recorder over its own memory store, its clock set to the
arrival's wall-clock instant (kept non-decreasing), deciding the arrival with the policy's own spec. The
production decision is never read or changed. A shadow stops recording at ``maxSteps`` (its trace is
then truncated), and a redaction collision poisons it (its trace could merge two clients).

:meth:`ReplayShadows.what_if` runs the configured candidate (``replay.candidate``) over a shadow's
trace: the identity self-check first (a cold record of the current spec must reproduce the shadow's
decisions), then the candidate replayed over the same arrivals (:mod:`._engine`); flips are read from
``allowed``, ``divergent`` counts steps where any field differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .._errors import ThrottleKitError, loggable
from ..config import PolicyConfig, RatePolicy
from ..config._forensics import CandidateDelta, ReplayConfig
from ..server._telemetry import DecisionTap
from ..stores import MemoryStore
from ..stores.base import join_prefix
from ._candidate import Refusal, apply_candidate, describe_candidate
from ._capture import Decided
from ._engine import Arrival, _StepClock, fold, record
from ._redact import Redactor

__all__ = ["REPLAYED_OPS", "ReplayShadows", "Shadow", "ShadowView", "attach_replay", "what_if"]

#: The operations a shadow is fed from (rate decisions).
REPLAYED_OPS = frozenset({"check", "check_many"})


@dataclass(frozen=True)
class ShadowView:
    """A shadow's trace copied at one instant (what a what-if runs over, on any thread)."""

    policy: RatePolicy
    spec: Mapping[str, Any]
    steps: list[Arrival]
    decisions: list[Any]
    observed: int
    truncated: bool
    poisoned: bool


class Shadow:
    """One policy's shadow recorder: its arrivals and the decisions its own spec gave them."""

    def __init__(self, policy: RatePolicy, spec: Mapping[str, Any], max_steps: int) -> None:
        self.policy = policy
        self.spec = dict(spec)
        self.max_steps = max_steps
        self.steps: list[Arrival] = []
        self.decisions: list[Any] = []
        self.observed = 0
        self.truncated = False
        self.poisoned = False
        self._clock = _StepClock()
        self._store = MemoryStore(clock=self._clock, max_keys=max(1024, max_steps + 1))
        strategy = policy.strategy
        self._run = self._store.bind(strategy.check_transform, strategy.params)
        self._kp = join_prefix(policy.prefix)

    def feed(self, key_ref: str, cost: float, at: int) -> None:
        self.observed += 1
        if self.poisoned or self.truncated:
            return
        if len(self.steps) >= self.max_steps:
            self.truncated = True
            return
        clock = self._clock
        if at < clock.now:
            at = clock.now  # the shadow's clock never goes backwards
        clock.now = at
        self.decisions.append(self._run(self._kp + key_ref, at, cost))
        self.steps.append((key_ref, cost, at))

    def view(self) -> ShadowView:
        """The trace as it stands (copies: the shadow keeps recording)."""
        steps = list(self.steps)
        return ShadowView(
            self.policy,
            self.spec,
            steps,
            self.decisions[: len(steps)],
            self.observed,
            self.truncated,
            self.poisoned,
        )

    @property
    def state(self) -> str:
        if self.poisoned:
            return "poisoned"
        if self.truncated:
            return "truncated"
        return "recording" if self.steps else "empty"

    def close(self) -> None:
        self._store.close()


def what_if(
    shadow: Shadow | ShadowView, delta: CandidateDelta, default_prefix: str | None = None
) -> dict[str, Any]:
    """The what-if result of ``delta`` over ``shadow``'s trace (a live shadow is copied first)."""
    if isinstance(shadow, Shadow):
        shadow = shadow.view()
    result: dict[str, Any] = {
        "policy": shadow.policy.name,
        "candidateName": "configured",
        "candidate": describe_candidate(delta),
        "state": "ok",
        "steps": len(shadow.steps),
        "flippedAllowToDeny": 0,
        "flippedDenyToAllow": 0,
        "flippedTotal": 0,
        "divergent": 0,
        "total": shadow.observed,
    }

    def refuse(state: str, reason: str, message: str) -> dict[str, Any]:
        result["state"] = state
        result["refusal"] = {"reason": reason, "message": message}
        return result

    if shadow.poisoned:
        return refuse("poisoned", "trace-poisoned", "a redaction collision: the trace may merge two clients")
    if not shadow.steps:
        return refuse("empty", "trace-empty", "no arrivals recorded yet")
    try:
        policy, _, comparability = apply_candidate(shadow.policy.name, shadow.spec, delta, default_prefix)
    except Refusal as r:
        return refuse("refused", r.reason, r.message)
    result["comparability"] = comparability
    steps = shadow.steps
    recorded = shadow.decisions
    try:
        baseline = record(shadow.policy.strategy, shadow.policy.prefix, steps)
        if [tuple(d) for d in baseline] != [tuple(d) for d in recorded]:
            return refuse(
                "refused",
                "identity-divergence",
                "a cold record of the current spec does not reproduce the shadow's decisions",
            )
        candidate = record(policy.strategy, policy.prefix, steps)
    except ThrottleKitError as exc:
        return refuse("refused", "unrebuildable-strategy", loggable(exc))
    f = fold(steps, baseline, candidate)
    result.update(
        state="truncated" if shadow.truncated else "ok",
        flippedAllowToDeny=f.allow_to_deny,
        flippedDenyToAllow=f.deny_to_allow,
        flippedTotal=f.flipped_total,
        divergent=f.divergent,
    )
    return result


class ReplayShadows:
    """The decision-tap observer feeding one :class:`Shadow` per replayed leaf rate policy."""

    def __init__(self, replay: ReplayConfig, config: PolicyConfig) -> None:
        self.replay = replay
        self.config = config
        self.redact = Redactor(replay.redaction_mode, replay.redaction_secret)
        limiters = config.raw.get("limiters", {})
        wanted = set(replay.policies)
        self.shadows: dict[str, Shadow] = {}
        for name, p in config.policies.items():
            if not isinstance(p, RatePolicy) or (wanted and name not in wanted):
                continue
            spec = limiters.get(name, {}) if isinstance(limiters, Mapping) else {}
            self.shadows[name] = Shadow(p, spec, replay.max_steps)
        self.faults = 0
        #: the last what-if :meth:`run` computed (None before the first)
        self.last: dict[str, Any] | None = None
        #: removes the shadows from the tap (set by :func:`attach_replay`)
        self.unregister: Callable[[], None] = lambda: None

    def __call__(self, event: Decided) -> None:
        try:
            if event.op not in REPLAYED_OPS:
                return
            shadow = self.shadows.get(event.policy)
            if shadow is None or event.cost <= 0:
                return
            ref = self.redact(event.key)
            if ref is None:
                shadow.poisoned = True
                return
            shadow.feed(ref, event.cost, event.at_ms)
        except Exception:
            self.faults += 1

    def status(self) -> list[dict[str, Any]]:
        """One row per shadow: ``{policy, steps, observed, state}``."""
        return [
            {"policy": name, "steps": len(s.steps), "observed": s.observed, "state": s.state}
            for name, s in self.shadows.items()
        ]

    def snapshot(self) -> dict[str, Any]:
        """The Monitor snapshot's ``replay`` section: every shadow's status, the configured candidate and
        the last what-if computed (by :meth:`run`, e.g. on SIGUSR1), or None."""
        delta = self.replay.candidate
        return {
            "shadows": self.status(),
            "candidate": None
            if delta is None
            else {"policy": delta.policy, "label": describe_candidate(delta)},
            "lastWhatIf": self.last,
        }

    def run(self) -> dict[str, Any]:
        """The configured what-if (``replay.candidate``) plus every shadow's status."""
        out: dict[str, Any] = {"shadows": self.status()}
        delta = self.replay.candidate
        if delta is None:
            out["whatIf"] = None
        elif delta.policy not in self.shadows:
            out["whatIf"] = {
                "policy": delta.policy,
                "candidateName": "configured",
                "state": "refused",
                "refusal": {"reason": "not-shadowed", "message": f"policy {delta.policy!r} has no shadow"},
            }
        else:
            out["whatIf"] = what_if(self.shadows[delta.policy], delta, self.config.default_prefix)
        self.last = out["whatIf"]
        return out

    def close(self) -> None:
        for s in self.shadows.values():
            s.close()


class _Tapped(Protocol):
    @property
    def tap(self) -> DecisionTap: ...


def attach_replay(service: _Tapped, config: PolicyConfig) -> ReplayShadows | None:
    """Register :class:`ReplayShadows` on ``service``'s decision tap per ``config.replay`` (None when
    the block is off). ``shadows.unregister()`` removes them."""
    if config.replay is None:
        return None
    shadows = ReplayShadows(config.replay, config)
    shadows.unregister = service.tap.register(shadows)
    return shadows
