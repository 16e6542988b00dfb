"""HTTP rate-limit response headers for a :class:`~throttlekit.Decision` (stdlib only).

Styles (``decision_headers(decision, style)``):

``"ietf"`` (default)
    ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (seconds until full
    replenishment): the three fields of the earlier IETF drafts, the form most clients parse today.
``"legacy"``
    ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` (epoch seconds), the GitHub
    convention.
``"both"``
    ``"ietf"`` and ``"legacy"`` together.
``"structured"``
    The current draft-ietf-httpapi-ratelimit-headers form: two Structured Fields (RFC 9651) naming the
    policy, ``RateLimit-Policy: "api";q=100;w=60`` (quota, window seconds when known) and
    ``RateLimit: "api";r=42;t=17`` (remaining, seconds until reset).
``"all"``
    ``"structured"``, ``"ietf"`` and ``"legacy"`` together (their field names are disjoint).

Every style adds ``Retry-After`` (RFC 9110 delay-seconds, rounded up) when the decision advises a wait.
"""

from __future__ import annotations

import math
import time
from typing import Literal

from ._errors import ConfigError
from ._types import Decision

__all__ = ["STYLES", "Style", "decision_headers"]

Style = Literal["ietf", "legacy", "both", "structured", "all"]
STYLES: tuple[str, ...] = ("ietf", "legacy", "both", "structured", "all")

#: The largest Structured Field Integer (RFC 9651: at most 15 digits).
_SF_INTEGER_MAX = 999_999_999_999_999


def _sf_string(text: str) -> str:
    """``text`` as a Structured Field String; only printable ASCII is representable."""
    if not isinstance(text, str) or any(not (0x20 <= ord(ch) <= 0x7E) for ch in text):
        raise ConfigError(
            f"rate-limit policy name must be printable ASCII (a structured-field string), got {text!r}"
        )
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sf_int(value: int) -> int:
    return max(0, min(int(value), _SF_INTEGER_MAX))


def decision_headers(
    decision: Decision,
    style: Style = "ietf",
    *,
    now_ms: int | None = None,
    policy: str = "default",
    window_ms: float | None = None,
) -> dict[str, str]:
    """The response headers for ``decision`` in ``style`` (see the module docstring).

    ``now_ms`` (epoch ms, default the wall clock) turns ``reset_at`` into seconds from now; pass it for
    reproducible output. ``policy`` names the policy and ``window_ms`` its window in the structured
    fields (``w`` is left out when the window is unknown).
    """
    if style not in STYLES:
        raise ConfigError(f"unknown header style {style!r}; allowed: {', '.join(map(repr, STYLES))}")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    limit = max(0, decision.limit)
    remaining = max(0, decision.remaining)
    reset_in = max(0, math.ceil((decision.reset_at - now) / 1000))
    headers: dict[str, str] = {}
    if style in ("structured", "all"):
        name = _sf_string(policy)
        policy_field = f"{name};q={_sf_int(limit)}"
        if window_ms is not None and window_ms > 0:
            policy_field += f";w={_sf_int(math.ceil(window_ms / 1000))}"
        headers["RateLimit-Policy"] = policy_field
        headers["RateLimit"] = f"{name};r={_sf_int(remaining)};t={_sf_int(reset_in)}"
    if style in ("ietf", "both", "all"):
        headers["RateLimit-Limit"] = str(limit)
        headers["RateLimit-Remaining"] = str(remaining)
        headers["RateLimit-Reset"] = str(reset_in)
    if style in ("legacy", "both", "all"):
        headers["X-RateLimit-Limit"] = str(limit)
        headers["X-RateLimit-Remaining"] = str(remaining)
        headers["X-RateLimit-Reset"] = str(max(0, decision.reset_at) // 1000)
    if decision.retry_after_ms > 0:
        headers["Retry-After"] = str(math.ceil(decision.retry_after_ms / 1000))
    return headers
