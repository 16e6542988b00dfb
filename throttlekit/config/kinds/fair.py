"""Weighted fair escrow kinds, served by Check (the request key is the tenant):

::

    gateway:
      fairEscrow: { limit: 100000, windowMs: 60000, weights: { team-a: 3, team-b: 1 } }
    global-gateway:
      federatedFairEscrow: { limit: 100000, windowMs: 60000, weights: { team-a: 3 }, region: eu }

``limit`` (whole units per window, at least 1) and ``windowMs`` (a number of ms) are required; ``weights``
maps a tenant to a positive weight (unlisted tenants weigh 1); ``maxKeys`` bounds the tenants tracked per
window (default 100000); ``idleMs`` (ms, default none) takes a tenant silent that long out of the split
until it asks again, so the others borrow its unused share. ``costRoom`` (default true), ``costRoomMaxKeys`` (64), ``costRoomRingSize`` (16)
and ``unit`` configure the monitoring door's Cost Room. ``federatedFairEscrow`` adds ``region`` (default
the server's ``--region``), ``key`` (the region pool's key, default the policy name) and ``prefix``
(default ``tk:rfp``), and needs a Redis store (checked when the server binds it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ... import _validate as v
from ..._errors import ConfigError
from ...fairness import fair_params
from .._issues import MISSING
from .._model import FairEscrowPolicy, FederatedFairEscrowPolicy, Policy
from . import _fields as f
from ._block import block_context, block_mapping

if TYPE_CHECKING:
    from . import PolicyContext

__all__ = ["FAIR_ESCROW", "FEDERATED_FAIR_ESCROW"]

_COMMON = (
    "limit",
    "windowMs",
    "weights",
    "maxKeys",
    "idleMs",
    "costRoom",
    "costRoomMaxKeys",
    "costRoomRingSize",
    "unit",
)


class _Fair:
    name: str = "fair escrow"
    keys: frozenset[str] = frozenset()

    def __init__(self, block: str, federated: bool) -> None:
        self.block: str | None = block
        self.federated = federated
        self.fields = (*_COMMON, *(("region", "key", "prefix") if federated else ()))

    def accepted_keys(self, spec: Mapping[str, Any]) -> frozenset[str]:
        return self.keys

    def build(self, ctx: PolicyContext, spec: Mapping[str, Any]) -> Policy | None:
        assert self.block is not None
        before = len(ctx.issues.items)
        block = block_mapping(ctx, spec, self.block, self.fields)
        if block is MISSING:
            return None
        sub = block_context(ctx, self.block)
        reported: set[str] = set()
        if "limit" not in block or "windowMs" not in block:
            sub.error("", "both `limit` and `windowMs` are required", allowed=", ".join(self.fields))
            reported.update(k for k in ("limit", "windowMs") if k not in block)
        if f.milliseconds(sub, block, "windowMs", period=False) is MISSING:
            reported.add("windowMs")
        idle = f.milliseconds(sub, block, "idleMs", period=False)
        if idle is not MISSING:
            idle = f.check(sub, block, "idleMs", v.duration)
        room = f.check(sub, block, "costRoom", _boolean)
        room_keys = f.check(sub, block, "costRoomMaxKeys", v.integer, 1, 1_000_000)
        ring = f.check(sub, block, "costRoomRingSize", v.integer, 1, 1_000_000)
        unit = f.check(sub, block, "unit", _text)
        region = f.check(sub, block, "region", v.name) if self.federated else MISSING
        key = f.check(sub, block, "key", v.name) if self.federated else MISSING
        prefix = sub.prefix(block) if self.federated and "prefix" in block else "tk:rfp"
        weights = block.get("weights", {})
        if weights is None:
            weights = {}
        try:
            limit, window, clean, max_keys = fair_params(
                block.get("limit"), block.get("windowMs"), weights, block.get("maxKeys", 100_000)
            )
        except ConfigError as exc:
            sub.report(exc, skip=reported)
            return None
        if len(ctx.issues.items) > before:
            return None
        fields: dict[str, Any] = {
            "idle_ms": None if idle is MISSING else idle,
            "cost_room": True if room is MISSING else room,
            "cost_room_max_keys": 64 if room_keys is MISSING else room_keys,
            "cost_room_ring_size": 16 if ring is MISSING else ring,
            "unit": "units (cost)" if unit is MISSING else unit,
        }
        if not self.federated:
            return FairEscrowPolicy(ctx.name, limit, window, clean, max_keys, **fields)
        return FederatedFairEscrowPolicy(
            ctx.name,
            limit,
            window,
            clean,
            max_keys,
            **fields,
            region=None if region is MISSING else region,
            key=ctx.name if key is MISSING else key,
            prefix=prefix,
        )


def _boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field=field, value=value, problem="must be true or false", allowed="true, false")
    return value


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise ConfigError(field=field, value=value, problem="must be a string", allowed="up to 64 characters")
    return value


FAIR_ESCROW = _Fair("fairEscrow", federated=False)
FEDERATED_FAIR_ESCROW = _Fair("federatedFairEscrow", federated=True)
