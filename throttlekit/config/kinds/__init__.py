"""The policy kinds a config file may declare, in one registry.

A kind is selected by a block key in the policy map (``twoTier: {...}``, ``tokenBudget: {...}``) or,
without any block, is the plain rate policy. Adding a kind is one module here that defines a
:class:`PolicyKind` and one line in :data:`KINDS`; the loader, the error messages (valid keys, nearest
key suggestions) and ``tk config validate`` pick it up from the registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any, Protocol

from ..._errors import ConfigError
from .._issues import MISSING, Issues
from .._model import Policy
from . import budget, concurrency, fair, federated, plain, two_tier

__all__ = ["KINDS", "PENDING_BLOCKS", "PolicyContext", "PolicyKind", "block_kinds", "plain_kind"]


class PolicyContext:
    """Where a kind reports problems while it builds one policy."""

    def __init__(self, issues: Issues, name: str, default_prefix: str | None) -> None:
        self.issues = issues
        self.name = name
        self.path = f"limiters.{name}"
        self.default_prefix = default_prefix

    def error(
        self, field: str, message: str, value: Any = MISSING, allowed: str = "", hint: str = ""
    ) -> None:
        self.issues.add(f"{self.path}.{field}" if field else self.path, message, value, allowed, hint)

    def report(
        self, error: ConfigError, fields: dict[str, str] | None = None, skip: Set[str] = frozenset()
    ) -> None:
        """Report every problem a validator found (``error.errors``), each at its field (renamed by
        ``fields`` to the key the file used), except fields in ``skip`` (already reported)."""
        kept = [e for e in error.errors if (fields or {}).get(e.field, e.field) not in skip]
        if kept:
            self.issues.add_error(self.path, ConfigError.group(kept), fields)

    def prefix(self, spec: Mapping[str, Any]) -> str:
        """The store-key prefix: the policy's ``prefix``, else ``defaults.prefix``, else the name."""
        value = spec.get("prefix", MISSING)
        if value is MISSING:
            return self.default_prefix if self.default_prefix is not None else self.name
        if not isinstance(value, str):
            self.error("prefix", "must be a string", value, "any string")
            return self.name
        return value


class PolicyKind(Protocol):
    """One policy kind. ``block`` is the key selecting it (None for the plain rate policy);
    ``keys`` are every policy-level key it knows besides that block, and ``accepted_keys(spec)`` those
    valid for this particular spec (the error messages list them); ``build`` validates a spec and returns
    the policy, or None after reporting its problems through ``ctx``."""

    name: str
    block: str | None
    keys: frozenset[str]

    def accepted_keys(self, spec: Mapping[str, Any]) -> frozenset[str]: ...

    def build(self, ctx: PolicyContext, spec: Mapping[str, Any]) -> Policy | None: ...


#: Every kind this server serves. The plain rate policy is the one without a block.
KINDS: tuple[PolicyKind, ...] = (
    plain.KIND,
    budget.TOKEN_BUDGET,
    budget.FLEET_BUDGET,
    two_tier.KIND,
    concurrency.CONCURRENCY,
    concurrency.DISTRIBUTED_CONCURRENCY,
    federated.KIND,
    fair.FAIR_ESCROW,
    fair.FEDERATED_FAIR_ESCROW,
)

#: Upstream kind blocks not served yet: a policy declaring one gets a clear "not yet" error instead of
#: "unknown key". A block moves out of this list when its module joins :data:`KINDS`.
PENDING_BLOCKS: tuple[str, ...] = tuple(
    b
    for b in (
        "tokenBudget",
        "fleetBudget",
        "federated",
        "fairEscrow",
        "federatedFairEscrow",
        "concurrency",
        "distributedConcurrency",
        "twoTier",
    )
    if b not in {k.block for k in KINDS}
)


def block_kinds() -> dict[str, PolicyKind]:
    """Kinds selected by a block key, by that key."""
    return {k.block: k for k in KINDS if k.block is not None}


def plain_kind() -> PolicyKind:
    """The kind used when a policy declares no block."""
    return next(k for k in KINDS if k.block is None)
