"""What a policy file becomes: typed, validated policy objects (the server binds them to a store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..strategies import Strategy

__all__ = ["Policy", "PolicyConfig", "RatePolicy"]


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
class PolicyConfig:
    """A loaded policy file: ``policies`` by name, in file order."""

    source: str
    policies: Mapping[str, Policy]
    version: int = 1
    default_prefix: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def names(self) -> list[str]:
        return list(self.policies)

    def describe(self) -> list[str]:
        """One line per policy: ``<name>: <kind> <parameters>``."""
        return [f"{name}: {p.describe()}" for name, p in self.policies.items()]
