"""Reading a kind block (``tokenBudget: {...}``, ``twoTier: {...}``): a mapping checked key by key."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._issues import MISSING, did_you_mean

if TYPE_CHECKING:
    from . import PolicyContext

__all__ = ["block_context", "block_mapping"]


def block_context(ctx: PolicyContext, block: str) -> PolicyContext:
    """A context whose errors name ``limiters.<policy>.<block>.<field>``."""
    sub = copy.copy(ctx)
    sub.path = f"{ctx.path}.{block}"
    return sub


def block_mapping(ctx: PolicyContext, spec: Mapping[str, Any], block: str, fields: tuple[str, ...]) -> Any:
    """The block's mapping with unknown keys reported (a suggestion when one is close), or MISSING."""
    value = spec.get(block)
    example = "{" + ", ".join(f"{f}: ..." for f in fields[:2]) + "}"
    if not isinstance(value, Mapping):
        ctx.error(block, f"must be a mapping of {block} fields", value, f"a mapping such as {example}")
        return MISSING
    sub = block_context(ctx, block)
    for key in value:
        if key not in fields:
            sub.error(
                str(key),
                f"unknown key in {block}",
                allowed=", ".join(sorted(fields)),
                hint=did_you_mean(str(key), fields),
            )
    return value
