"""What a policy file becomes: typed, validated policy objects (the server binds them to a store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..concurrency import ConcurrencyParams
from ..jointlp import JointLp
from ..strategies import Strategy

if TYPE_CHECKING:
    from ._forensics import CaptureConfig, ReplayConfig

__all__ = [
    "ConcurrencyPolicy",
    "DistributedConcurrencyPolicy",
    "FairEscrowPolicy",
    "FederatedFairEscrowPolicy",
    "FederatedPolicy",
    "FleetBudgetPolicy",
    "Policy",
    "PolicyConfig",
    "RatePolicy",
    "TokenBudgetPolicy",
    "TwoTierPolicy",
]


class Policy:
    """Base of the policy kinds. ``name`` is unique in the file; ``kind`` names the kind block."""

    name: str
    kind: ClassVar[str]

    def describe(self) -> str:
        """One line for the startup log and ``tk config validate``."""
        raise NotImplementedError

    def state(self) -> tuple[str, object] | None:
        """``(store-key prefix, what decides the state layout)``, or None for a policy with no shared
        store state. Two policies with one prefix must agree on the second item, or their keys collide."""
        return None


@dataclass(frozen=True)
class RatePolicy(Policy):
    """A plain rate limiter: one strategy over the shared store, keys under ``prefix``.

    Served by Check, CheckMany, Peek and Forecast.
    """

    name: str
    strategy: Strategy
    prefix: str
    kind: ClassVar[str] = "rate"

    def describe(self) -> str:
        return f"{self.strategy.describe()} (prefix {self.prefix!r})"

    def state(self) -> tuple[str, object] | None:
        return (self.prefix, (self.strategy.kind, tuple(self.strategy.params)))


@dataclass(frozen=True)
class TwoTierPolicy(Policy):
    """A rate policy fronted by an in-process tier (``twoTier:``): L2 is ``strategy`` on the shared store
    (keys under ``prefix``, the same keys a plain policy would use), L1 is per process.

    Served by Check and CheckMany (consume-only: Peek and Forecast are UNIMPLEMENTED).
    """

    name: str
    strategy: Strategy
    prefix: str
    mode: str = "leased"
    batch: int = 1
    low_water: int = 0
    window_coupled: bool = False
    return_idle_after_ms: float | None = None
    kind: ClassVar[str] = "twoTier"

    def describe(self) -> str:
        if self.mode != "leased":
            return f"twoTier {self.mode} over {self.strategy.describe()} (prefix {self.prefix!r})"
        extra = f", lowWater {self.low_water}" if self.low_water else ""
        extra += ", windowCoupled" if self.window_coupled else ""
        extra += f", idle {self.return_idle_after_ms:g} ms" if self.return_idle_after_ms else ""
        return f"twoTier leased batch {self.batch}{extra} over {self.strategy.describe()} (prefix {self.prefix!r})"

    def state(self) -> tuple[str, object] | None:
        return (self.prefix, (self.strategy.kind, tuple(self.strategy.params)))


@dataclass(frozen=True)
class TokenBudgetPolicy(Policy):
    """A per-process cost meter (``tokenBudget:``): ``budget`` tokens per epoch-aligned ``window_ms`` per
    key, at most ``max_keys`` keys (oldest forgotten first). Served by Debit."""

    name: str
    budget: float
    window_ms: float
    max_keys: int = 100_000
    kind: ClassVar[str] = "tokenBudget"

    def describe(self) -> str:
        return (
            f"{self.kind} {self.budget:g} tokens per {self.window_ms:g} ms per key (max {self.max_keys} keys)"
        )


@dataclass(frozen=True)
class FleetBudgetPolicy(TokenBudgetPolicy):
    """A fleet-shared cost meter (``fleetBudget:``): each key's counter at ``<prefix>:<key>`` in the shared
    store, debited atomically, so every instance on that store meters one budget. Served by Debit."""

    prefix: str = ""
    kind: ClassVar[str] = "fleetBudget"

    def describe(self) -> str:
        return (
            f"{self.kind} {self.budget:g} tokens per {self.window_ms:g} ms per key (prefix {self.prefix!r})"
        )

    def state(self) -> tuple[str, object] | None:
        return (self.prefix, ("budget", self.budget, self.window_ms))


@dataclass(frozen=True)
class ConcurrencyPolicy(Policy):
    """An in-flight admitter (``concurrency:``): a per-process adaptive guard; with ``strategy`` also a
    rate axis over the shared store (keys under ``prefix``), admitted only when both axes admit.
    Served by Admit, Release and Heartbeat."""

    name: str
    params: ConcurrencyParams
    strategy: Strategy | None = None
    prefix: str = ""
    #: the joint-LP bid filter (our extension: the ``jointLp:`` block), None = marginal
    joint_lp: JointLp | None = None
    kind: ClassVar[str] = "concurrency"

    def describe(self) -> str:
        rate = f" x rate {self.strategy.describe()} (prefix {self.prefix!r})" if self.strategy else ""
        lp = f", {self.joint_lp.describe()}" if self.joint_lp is not None else ""
        return f"{self.params.describe()}{rate}{lp}"

    def state(self) -> tuple[str, object] | None:
        if self.strategy is None:
            return None
        return (self.prefix, (self.strategy.kind, tuple(self.strategy.params)))


@dataclass(frozen=True)
class DistributedConcurrencyPolicy(ConcurrencyPolicy):
    """One in-flight ceiling across every server on a shared Redis or Postgres
    (``distributedConcurrency:``): each node's guard is capped by its share of ``L_global``, reported
    every ``heartbeat_ms`` to the coordinator key ``<coordinator_prefix>conc:<policy name>``."""

    aggregate: str = "median"
    #: how L_global is split (spec 9.4 step 4): equal-split | demand-proportional
    allocation: str = "equal-split"
    coordinator_prefix: str = "tk:fed"
    heartbeat_ms: int = 1000
    on_outage: str = "fail-closed"
    #: acknowledged handoff (spec 9.4); eager off-cycle beats (spec 9.3) and their debounce
    handoff: bool = False
    eager_handoff: bool = False
    min_heartbeat_ms: int = 100
    kind: ClassVar[str] = "distributedConcurrency"

    def describe(self) -> str:
        extra = ", acknowledged handoff" if self.handoff else ""
        if self.eager_handoff:
            extra += f", eager beats (at most one per {self.min_heartbeat_ms} ms)"
        return (
            f"{self.kind} ({super().describe()}), {self.aggregate} across the fleet, {self.allocation}, heartbeat {self.heartbeat_ms} ms, "
            f"{self.on_outage}{extra} (coordinator prefix {self.coordinator_prefix!r})"
        )


@dataclass(frozen=True)
class FederatedPolicy(Policy):
    """A global per-window budget shared by every region (``federated:``): ``budget`` units (the
    strategy's limit, floored) per ``window_ms`` window aligned on ``anchor``, leased ``batch`` at a time
    from the coordinator at ``<coordinator_prefix>:<prefix>:<key>`` in the shared store. ``region`` None
    means the server's ``--region``. ``budgets`` gives keys their own budget. With a regional store (the
    server's ``--regional-store``) the region's escrow sits at ``<escrow_prefix>:<region>:<prefix>:<key>``
    and is refilled ``escrow_batch`` units at a time (None: 4 x batch). ``on_coordinator_outage`` and
    ``health_check_ms`` (the probe interval of ``regional-only``). Served by Check and CheckMany, and by
    the Fleet door (Reserve)."""

    name: str
    strategy: Strategy
    prefix: str
    window_ms: float
    budget: int
    anchor: int = 0
    batch: int = 16
    region: str | None = None
    coordinator_prefix: str = "tk:fed"
    budgets: Mapping[str, int] = field(default_factory=dict)
    on_coordinator_outage: str = "fail-closed"
    escrow_batch: int | None = None
    escrow_prefix: str = "tk:l2"
    health_check_ms: float = 5000
    kind: ClassVar[str] = "federated"

    def key_prefix(self) -> str:
        """Where the coordinator's keys of this policy live (below the store's own prefix)."""
        return ":".join(p for p in (self.coordinator_prefix, self.prefix) if p)

    def describe(self) -> str:
        region = self.region if self.region is not None else "(the server's --region)"
        escrow = 4 * self.batch if self.escrow_batch is None else self.escrow_batch
        return (
            f"federated {self.budget} per {self.window_ms:g} ms window, batch {self.batch}, region {region}, "
            f"over {self.strategy.describe()} (coordinator keys {self.key_prefix()!r}); on coordinator "
            f"outage {self.on_coordinator_outage} (probe every {self.health_check_ms:g} ms); regional "
            f"escrow batch {escrow}, keys {self.escrow_prefix!r}"
        )

    def state(self) -> tuple[str, object] | None:
        return (self.key_prefix(), ("federated", self.window_ms, self.anchor))


@dataclass(frozen=True)
class FairEscrowPolicy(Policy):
    """A weighted fair split of ``limit`` units per ``window_ms`` window across tenants (``fairEscrow:``,
    one instance; the request key is the tenant). ``weights``: tenant -> weight (default 1); at most
    ``max_keys`` tenants per window; ``idle_ms``: a tenant silent that long leaves the split (None: never).
    The Cost Room fields are kept for the monitoring door. Served by Check."""

    name: str
    limit: int
    window_ms: float
    weights: Mapping[str, float] = field(default_factory=dict)
    max_keys: int = 100_000
    idle_ms: float | None = None
    cost_room: bool = True
    cost_room_max_keys: int = 64
    cost_room_ring_size: int = 16
    unit: str = "units (cost)"
    kind: ClassVar[str] = "fairEscrow"

    def describe(self) -> str:
        weights = ", ".join(f"{t}: {w:g}" for t, w in self.weights.items()) or "all 1"
        return (
            f"{self.kind} {self.limit} per {self.window_ms:g} ms window split by weight ({weights}; "
            f"max {self.max_keys} tenants)"
        )


@dataclass(frozen=True)
class FederatedFairEscrowPolicy(FairEscrowPolicy):
    """:class:`FairEscrowPolicy` across regions (``federatedFairEscrow:``): this region's tenants split the
    slice of ``limit`` the region pool at ``<prefix>:<key>`` in Redis grants it. ``region`` None means the
    server's ``--region``."""

    region: str | None = None
    key: str = ""
    prefix: str = "tk:rfp"
    kind: ClassVar[str] = "federatedFairEscrow"

    def pool_key(self) -> str:
        return ":".join(p for p in (self.prefix, self.key) if p)

    def describe(self) -> str:
        region = self.region if self.region is not None else "(the server's --region)"
        return f"{super().describe()}, region {region}, pool {self.pool_key()!r}"

    def state(self) -> tuple[str, object] | None:
        return (self.pool_key(), ("regionPool", self.limit, self.window_ms))


@dataclass(frozen=True)
class PolicyConfig:
    """A loaded policy file: ``policies`` by name, in file order."""

    source: str
    policies: Mapping[str, Policy]
    version: int = 1
    default_prefix: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: Policies declared ``shadow: true``: decided, observed and counted, but always answered allowed.
    shadow: frozenset[str] = frozenset()
    #: the enabled ``capture:`` block (None: capture is off)
    capture: CaptureConfig | None = None
    #: the enabled ``replay:`` block (None: no What-If Replay shadows)
    replay: ReplayConfig | None = None

    def names(self) -> list[str]:
        return list(self.policies)

    def describe(self) -> list[str]:
        """One line per policy: ``<name>: <kind> <parameters>`` (`` [shadow]`` for a shadow policy)."""
        return [
            f"{name}: {p.describe()}" + (" [shadow]" if name in self.shadow else "")
            for name, p in self.policies.items()
        ]
