"""Admissions: the handle of a held (or denied) in-flight slot, sync and async, and the in-process admitter.

:class:`Admission` / :class:`AsyncAdmission` have throttlekit-py 0.5.1's public shape: ``decision``,
``lease_id``, ``lease_expires_at``, ``binding_axis``, ``policy_denied``, ``allowed``, ``held``,
``reclaimed``, ``release(dropped=False)`` (idempotent; a no-op for a denial) and the context manager,
which releases on exit and releases with ``dropped=True`` when the block raised (never swallowing the
exception). The object that minted it (a gRPC client, or :class:`Admitter` in process) gives the slot
back through ``_release_lease(lease_id, dropped, heartbeat=...)``.

:class:`Admitter` / :class:`AsyncAdmitter` are the embedded API: the same admission as the server's
(spec 10.3: concurrency first, then an optional rate limiter at cost 1; a rate denial returns the slot
unused), over a :class:`~throttlekit.concurrency.ConcurrencyGuard` (decided by the Lua transforms).
With ``policy="joint-lp"`` the joint-LP bid-price filter (:mod:`throttlekit.jointlp`, spec 10.3 step 2)
runs between the concurrency and the rate axis: an admit whose ``value`` is below its bid is
``policy_denied`` and its slot goes back unused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, Protocol

from . import _validate as v_
from ._clock import Clock
from ._errors import ConfigError
from ._types import Decision
from .concurrency import Admitted, ConcurrencyGuard, ConcurrencyParams, FusedAxes, Grant, LeaseTable, combine
from .jointlp import POLICIES, BidFilter, BidVerdict, JointLp

__all__ = ["Admission", "Admitter", "AsyncAdmission", "AsyncAdmitter", "policy_denial"]


def policy_denial(conc: Decision | None) -> Decision:
    """The decision of a joint-LP denial (spec 10.3 step 2): the concurrency decision (ALLOW_FULL without
    a concurrency axis: limit 2^53 - 1, reset 0) with ``allowed`` false, ``remaining`` 0 and no retry."""
    if conc is None:
        return Decision(False, v_.MAX_SAFE_INTEGER, 0, 0, 0)
    return replace(conc, allowed=False, remaining=0, retry_after_ms=0)


def check_admit_terms(cost: Any, value: Any, hold: Any) -> tuple[float, float, float]:
    """An admit's ``cost`` and ``value`` (finite, > 0) and ``hold`` (a number >= 0; only a finite one > 0
    adds the hold term)."""
    if (  # the common call (integers in range, as the defaults are): nothing to convert or report
        cost.__class__ is int
        and value.__class__ is int
        and hold.__class__ is int
        and 0 < cost <= v_.MAX_SAFE_INTEGER
        and 0 < value <= v_.MAX_SAFE_INTEGER
        and hold >= 0
    ):
        return cost, value, hold
    c = v_.Checks("admit")
    cost = c(v_.number, "cost", cost)
    value = c(v_.number, "value", value)
    if not v_._is_number(hold) or math.isnan(hold) or hold < 0:
        c.error("hold", "must be a number >= 0", hold, "expected slot time >= 0 (0: no hold term)")
    c.done()
    return cost, value, hold


class _Releaser(Protocol):
    def _release_lease(self, lease_id: str, dropped: bool, *, heartbeat: bool) -> Any: ...


class Admission:
    """A held (or denied) admission. Use it as a context manager so a held slot always goes back::

    with backend.admit("checkout", user_id) as adm:
        if not adm.allowed:
            return 429            # adm.binding_axis names the axis that denied
        do_work()                # raising inside => release(dropped=True)
    """

    def __init__(
        self,
        backend: Any,
        decision: Decision,
        lease_id: str,
        lease_expires_at: int,
        binding_axis: str,
        policy_denied: bool,
        *,
        heartbeat: bool = False,
    ) -> None:
        self.decision = decision
        self.lease_id = lease_id
        self.lease_expires_at = lease_expires_at
        self.binding_axis = binding_axis
        self.policy_denied = policy_denied
        self._backend = backend
        self._heartbeat = heartbeat
        self._released = False
        self._reclaimed = False

    @property
    def allowed(self) -> bool:
        """Whether the work may proceed (the combined decision of the policy's axes)."""
        return self.decision.allowed

    @property
    def held(self) -> bool:
        """True iff this admission holds a slot that must be released."""
        return bool(self.lease_id)

    @property
    def reclaimed(self) -> bool:
        """True iff the server reclaimed the lease (a missed heartbeat): treat the work as dropped."""
        return self._reclaimed

    def _mark_reclaimed(self) -> None:
        self._reclaimed = True
        self._released = True

    def _take(self) -> bool:
        """Mark released; True when a held slot is to be given back now (first release only)."""
        if self._released:
            return False
        self._released = True
        return bool(self.lease_id)

    def release(self, *, dropped: bool = False) -> None:
        """Give the slot back (``dropped=True``: the work failed or timed out; an adaptive limit
        contracts). Idempotent; a no-op for a denied admission."""
        if self._take():
            self._backend._release_lease(self.lease_id, dropped, heartbeat=self._heartbeat)

    def __enter__(self) -> Admission:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release(dropped=exc_type is not None)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(allowed={self.allowed}, lease_id={self.lease_id!r}, "
            f"binding_axis={self.binding_axis!r})"
        )


class AsyncAdmission(Admission):
    """The async twin of :class:`Admission`: ``await adm.release()`` or ``async with``."""

    async def release(self, *, dropped: bool = False) -> None:  # type: ignore[override]
        if self._take():
            await self._backend._release_lease(self.lease_id, dropped, heartbeat=self._heartbeat)

    async def __aenter__(self) -> AsyncAdmission:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release(dropped=exc_type is not None)


class Admitter:
    """In-process admission over a concurrency guard and an optional rate limiter (any object with
    ``check(key, cost) -> Decision``, e.g. :class:`~throttlekit.Limiter`), or the Lua-fused rate x cost
    pair (``fused``: a :class:`~throttlekit.concurrency.FusedAxes`, spec 10.4: gcra at cost 1 and a token
    bucket at ``cost`` in one Lua call; each axis debits iff it allowed). The binding axis of a denial is
    the first of concurrency, rate, cost that denied.

    ``policy="joint-lp"`` with ``joint_lp`` (a :class:`~throttlekit.jointlp.JointLp` or the policy file's
    ``jointLp`` mapping: ``{"duals": {"rate", "cost", "conc"?}}`` or a workload ``{"types", "rateBudget",
    "costBudget", "concBudget"?, "adaptive"?}`` solved by the Lua solver here, at construction) prices each
    admit after the concurrency axis: ``value < p_rate + p_cost * cost (+ p_conc * hold)`` is a policy
    denial (``policy_denied``, no binding axis, the slot returned unused, rate and cost never consulted).
    The adaptive learner's state is ``<key>:jointlp`` in the guard's store.

    ``admit(key)`` returns an :class:`Admission`; leases not released within ``lease_ttl_ms`` are returned
    as dropped by :meth:`sweep` (call it periodically if holders may vanish without releasing)."""

    def __init__(
        self,
        params: ConcurrencyParams | None = None,
        *,
        rate: Any = None,
        fused: FusedAxes | None = None,
        store: Any = None,
        key: str = "guard",
        clock: Clock | None = None,
        lease_ttl_ms: int = 60_000,
        policy: str = "marginal",
        joint_lp: JointLp | Mapping[str, Any] | None = None,
    ) -> None:
        if rate is not None and fused is not None:
            raise ConfigError(field="fused", problem="give either a rate limiter or fused axes, not both")
        policy = v_.choice("policy", policy, POLICIES)
        if policy == "joint-lp" and joint_lp is None:
            raise ConfigError(
                field="joint_lp",
                problem='is missing: policy "joint-lp" prices admits with its duals',
                allowed="joint_lp={'duals': {...}} or a workload {'types': [...], 'rateBudget': ..., 'costBudget': ...}",
            )
        if policy == "marginal" and joint_lp is not None:
            raise ConfigError(
                field="policy",
                value=policy,
                problem="is marginal, so joint_lp would be ignored",
                allowed='policy="joint-lp" with joint_lp, or no joint_lp',
            )
        self.guard = ConcurrencyGuard(params, store=store, key=key, clock=clock)
        self.rate = rate
        self.fused = fused
        self.leases = LeaseTable(lease_ttl_ms, self.guard.clock)
        self.policy = policy
        #: the joint-LP bid filter (None under marginal); its adaptive learner lives beside the guard
        self.bid: BidFilter | None = None
        if joint_lp is not None:
            self.bid = BidFilter(joint_lp, store=self.guard.store, key=f"{key}:jointlp")

    def _admitted(self, adm: Admitted, cls: Any) -> Any:
        return cls(
            self, adm.decision, adm.lease_id, adm.lease_expires_at, adm.binding_axis, adm.policy_denied
        )

    def _decide(self, key: str, rate: Decision | None, grant: Any) -> Admitted:
        decision = grant.decision
        if rate is not None:
            decision = combine(decision, rate)
            if not decision.allowed:
                self.guard.release(grant, sample=False)
                return Admitted(decision, binding_axis="rate")
        lease = self.leases.mint(self.guard, grant)
        return Admitted(decision, lease.id, int(lease.deadline))

    def _fused(self, key: str, cost: float, grant: Any) -> Admitted:
        assert self.fused is not None
        try:
            f = self.fused.check(key, cost)
        except BaseException:
            self.guard.release(grant, sample=False)
            raise
        decision = combine(grant.decision, f.decision)
        if not decision.allowed:
            self.guard.release(grant, sample=False)
            return Admitted(decision, binding_axis="rate" if not f.rate.allowed else "cost")
        lease = self.leases.mint(self.guard, grant)
        return Admitted(decision, lease.id, int(lease.deadline))

    def _priced(self, grant: Grant, cost: float, value: float, hold: float) -> Admitted | None:
        """The joint-LP filter (spec 10.3 step 2; None under marginal or when the bid is met): a denial
        returns the held slot unused and answers ``policy_denied`` with no binding axis."""
        if self.bid is None:
            return None
        try:
            verdict: BidVerdict = self.bid.check(cost, value, hold)
        except BaseException:
            self.guard.release(grant, sample=False)
            raise
        self.last_verdict = verdict
        if not verdict.denied:
            return None
        self.guard.release(grant, sample=False)
        return Admitted(policy_denial(grant.decision), policy_denied=True)

    last_verdict: BidVerdict | None = None

    def admit(self, key: str = "", cost: float = 1, value: float = 1, hold: float = 0) -> Admission:
        """Admit one unit of work. The rate axis is checked at cost 1 (as the upstream does); ``cost`` is
        what the fused cost axis consumes and, under joint-lp, what the bid prices with ``value`` (what
        the admit earns) and ``hold`` (its expected slot time)."""
        cost, value, hold = check_admit_terms(cost, value, hold)
        grant = self.guard.acquire()
        if not grant.decision.allowed:
            return self._admitted(Admitted(grant.decision, binding_axis="concurrency"), Admission)  # type: ignore[no-any-return]
        priced = self._priced(grant, cost, value, hold)
        if priced is not None:
            return self._admitted(priced, Admission)  # type: ignore[no-any-return]
        if self.fused is not None:
            return self._admitted(self._fused(key, cost, grant), Admission)  # type: ignore[no-any-return]
        try:
            rate = self.rate.check(key, 1) if self.rate is not None else None
        except BaseException:
            self.guard.release(grant, sample=False)
            raise
        return self._admitted(self._decide(key, rate, grant), Admission)  # type: ignore[no-any-return]

    def _release_lease(self, lease_id: str, dropped: bool, *, heartbeat: bool = False) -> None:
        lease = self.leases.pop(lease_id)
        if lease is not None:
            self.guard.release(lease.grant, dropped)

    def sweep(self) -> int:
        """Return every lapsed lease's slot as dropped; how many."""
        expired = self.leases.expired()
        for lease in expired:
            self.guard.release(lease.grant, True)
        return len(expired)

    @property
    def limit(self) -> int:
        return self.guard.limit

    @property
    def inflight(self) -> int:
        return self.guard.inflight

    def close(self) -> None:
        if self.bid is not None:
            self.bid.close()
        self.guard.close()


class AsyncAdmitter(Admitter):
    """:class:`Admitter` with an async rate limiter (``await rate.check(key, cost)``, e.g.
    :class:`~throttlekit.AsyncLimiter`); ``await admit(...)`` returns an :class:`AsyncAdmission`."""

    async def admit(  # type: ignore[override]
        self, key: str = "", cost: float = 1, value: float = 1, hold: float = 0
    ) -> AsyncAdmission:
        cost, value, hold = check_admit_terms(cost, value, hold)
        grant = self.guard.acquire()
        if not grant.decision.allowed:
            return self._admitted(Admitted(grant.decision, binding_axis="concurrency"), AsyncAdmission)  # type: ignore[no-any-return]
        priced = self._priced(grant, cost, value, hold)
        if priced is not None:
            return self._admitted(priced, AsyncAdmission)  # type: ignore[no-any-return]
        if self.fused is not None:
            return self._admitted(self._fused(key, cost, grant), AsyncAdmission)  # type: ignore[no-any-return]
        try:
            rate = await self.rate.check(key, 1) if self.rate is not None else None
        except BaseException:
            self.guard.release(grant, sample=False)
            raise
        return self._admitted(self._decide(key, rate, grant), AsyncAdmission)  # type: ignore[no-any-return]

    async def _release_lease(self, lease_id: str, dropped: bool, *, heartbeat: bool = False) -> None:  # type: ignore[override]
        super()._release_lease(lease_id, dropped, heartbeat=heartbeat)
