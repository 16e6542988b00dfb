"""The ``capture:`` and ``replay:`` top-level blocks of a policy file, checked key by key.

Both are opt-in: only a literal ``enabled: true`` turns one on, and a block that is off is not checked
further (a file may carry a prepared block). ``enabled`` that is not a boolean is an error (upstream
silently treats ``enabled: "yes"`` as off). Secrets named by ``...Env`` keys are read from the
environment when the file is loaded: a named variable that is unset or empty is an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._issues import MISSING, Issues

__all__ = [
    "REDACTION_MODES",
    "CandidateDelta",
    "CaptureConfig",
    "ReplayConfig",
    "capture_block",
    "replay_block",
]

REDACTION_MODES = ("hmac", "per-trace-salt", "drop")
#: The LimiterSpec fields a replay candidate may change.
_CAPTURE_KEYS = ("enabled", "redaction", "tenant", "durable", "retention", "auth")
_REPLAY_KEYS = ("enabled", "policies", "maxSteps", "redaction", "candidate")
_HEX64 = re.compile("[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class CaptureConfig:
    """A ``capture:`` block that is enabled (see ``docs/forensics.md``, "Decision capture")."""

    redaction_mode: str
    redaction_secret: str | None = field(default=None, repr=False)
    tenant_from: str | None = None
    tenant_delimiter: str = ":"
    durable_dir: str | None = None
    encryption_key: bytes | None = field(default=None, repr=False)
    segment_max_events: int = 10_000
    ttl_ms: int = 86_400_000
    max_scopes: int = 1000
    ring_size: int = 10_000
    operator_secret: str | None = field(default=None, repr=False)

    @property
    def counts_only(self) -> bool:
        """No tenant rule: only per-policy allow/deny tallies are kept."""
        return self.tenant_from is None


@dataclass(frozen=True)
class CandidateDelta:
    """``replay.candidate``: the policy it changes and its ``set`` / ``scale`` / ``swap`` maps."""

    policy: str
    set: Mapping[str, Any] = field(default_factory=dict)
    scale: Mapping[str, Any] = field(default_factory=dict)
    swap: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplayConfig:
    """A ``replay:`` block that is enabled."""

    policies: tuple[str, ...] = ()
    max_steps: int = 50_000
    redaction_mode: str = "per-trace-salt"
    redaction_secret: str | None = field(default=None, repr=False)
    candidate: CandidateDelta | None = None


class _Block:
    """Reads one block's keys, reporting through ``issues`` under ``path``."""

    def __init__(self, issues: Issues, path: str, value: Any, keys: tuple[str, ...]) -> None:
        self.issues = issues
        self.path = path
        self.ok = isinstance(value, Mapping)
        self.value: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        if not self.ok:
            issues.add(path, "expected a mapping", value, "keys " + ", ".join(keys))
        for key in self.value:
            if key not in keys:
                issues.unknown_key(path, key, keys, where=path)

    def sub(self, key: str, keys: tuple[str, ...]) -> _Block | None:
        v = self.value.get(key, MISSING)
        return None if v is MISSING else _Block(self.issues, f"{self.path}.{key}", v, keys)

    def positive(self, key: str, default: int) -> int:
        v = self.value.get(key, MISSING)
        if v is MISSING:
            return default
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= 2**53 - 1:
            self.issues.add(f"{self.path}.{key}", "must be a positive integer", v, "an integer >= 1")
            return default
        return v

    def string(self, key: str) -> str | None:
        v = self.value.get(key, MISSING)
        if v is MISSING:
            return None
        if not isinstance(v, str) or not v:
            self.issues.add(f"{self.path}.{key}", "must be a non-empty string", v)
            return None
        return v

    def secret(self, key: str) -> str | None:
        """``key`` or ``<key>Env`` (the environment variable wins when both are given)."""
        env = self.value.get(f"{key}Env", MISSING)
        if env is not MISSING:
            if not isinstance(env, str) or not env:
                self.issues.add(f"{self.path}.{key}Env", "must be a non-empty env var name", env)
                return None
            got = os.environ.get(env, "")
            if not got:
                self.issues.add(f"{self.path}.{key}Env", f'env var "{env}" is not set', env)
                return None
            return got
        return self.string(key)


def _enabled(issues: Issues, path: str, value: Any) -> bool:
    if not isinstance(value, Mapping):
        issues.add(path, "expected a mapping", value, "a mapping with `enabled: true`")
        return False
    on = value.get("enabled", False)
    if not isinstance(on, bool):
        issues.add(f"{path}.enabled", "must be true or false", on, "true or false")
        return False
    return on


def _redaction(block: _Block, required: bool) -> tuple[str, str | None]:
    sub = block.sub("redaction", ("mode", "secret", "secretEnv"))
    if sub is None:
        if required:
            block.issues.add(f"{block.path}.redaction", "required when capture is enabled (name a mode)")
        return "per-trace-salt", None
    mode = sub.value.get("mode", MISSING)
    if mode not in REDACTION_MODES:
        sub.issues.add(
            f"{sub.path}.mode", "must be one of hmac, per-trace-salt, drop", mode, ", ".join(REDACTION_MODES)
        )
        return "drop", None
    secret = sub.secret("secret")
    if mode == "hmac" and secret is None and not any(k in sub.value for k in ("secret", "secretEnv")):
        sub.issues.add(sub.path, "hmac mode requires `secret` or `secretEnv`")
    return mode, secret


def capture_block(value: Any, issues: Issues) -> CaptureConfig | None:
    """The enabled ``capture:`` block, or None when it is off (errors reported through ``issues``)."""
    if not _enabled(issues, "capture", value):
        return None
    b = _Block(issues, "capture", value, _CAPTURE_KEYS)
    mode, secret = _redaction(b, True)
    tenant_from, delimiter = None, ":"
    tenant = b.sub("tenant", ("from", "delimiter"))
    if tenant is not None:
        tenant_from = tenant.value.get("from")
        if tenant_from not in ("key", "key-prefix"):
            issues.add("capture.tenant.from", 'must be "key" or "key-prefix"', tenant_from, "key, key-prefix")
            tenant_from = None
        if "delimiter" in tenant.value:
            delimiter = tenant.string("delimiter") or ":"
    durable_dir = key = None
    max_events = 10_000
    durable = b.sub("durable", ("dir", "encryptionKeyHex", "encryptionKeyHexEnv", "segmentMaxEvents"))
    if durable is not None and durable.ok:
        durable_dir = durable.string("dir")
        if "dir" not in durable.value:
            issues.add("capture.durable.dir", "required: the directory for encrypted segments")
        hexkey = durable.secret("encryptionKeyHex")
        if hexkey is None and not any(
            k in durable.value for k in ("encryptionKeyHex", "encryptionKeyHexEnv")
        ):
            issues.add(
                "capture.durable.encryptionKeyHex",
                "required when durable (or encryptionKeyHexEnv): segments are always encrypted",
                allowed="64 hex characters (a 256-bit AES key)",
            )
        elif hexkey is not None:
            if _HEX64.fullmatch(hexkey) is None:
                where = (
                    "encryptionKeyHexEnv" if "encryptionKeyHexEnv" in durable.value else "encryptionKeyHex"
                )
                issues.add(
                    f"capture.durable.{where}",
                    f"must be exactly 64 hex characters (got {len(hexkey)} characters)",
                    allowed="64 hex characters (a 256-bit AES key)",
                )
            else:
                key = bytes.fromhex(hexkey.lower())
        max_events = durable.positive("segmentMaxEvents", 10_000)
    ttl, scopes, ring = 86_400_000, 1000, 10_000
    retention = b.sub("retention", ("ttlMs", "maxScopes", "ringSize"))
    if retention is not None:
        ttl = retention.positive("ttlMs", ttl)
        scopes = retention.positive("maxScopes", scopes)
        ring = retention.positive("ringSize", ring)
    operator = None
    auth = b.sub("auth", ("operatorSecret", "operatorSecretEnv"))
    if auth is not None:
        operator = auth.secret("operatorSecret")
    return CaptureConfig(
        mode, secret, tenant_from, delimiter, durable_dir, key, max_events, ttl, scopes, ring, operator
    )


def _names(value: Any, issues: Issues) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(n for n in re.split(r"[,\s]+", value) if n)
    if isinstance(value, list) and all(isinstance(n, str) for n in value):
        return tuple(value)
    issues.add("replay.policies", "must be a list of policy names or a comma/space-separated string", value)
    return ()


def replay_block(value: Any, issues: Issues) -> ReplayConfig | None:
    """The enabled ``replay:`` block, or None when it is off."""
    if not _enabled(issues, "replay", value):
        return None
    b = _Block(issues, "replay", value, _REPLAY_KEYS)
    policies = _names(b.value.get("policies", ()), issues) if "policies" in b.value else ()
    mode, secret = _redaction(b, False)
    candidate = None
    c = b.sub("candidate", ("policy", "set", "scale", "swap"))
    if c is not None and c.ok:
        policy = c.string("policy")
        if "policy" not in c.value:
            issues.add("replay.candidate.policy", "required: the policy the candidate changes")
        maps: dict[str, Mapping[str, Any]] = {}
        for op in ("set", "scale", "swap"):
            v = c.value.get(op, MISSING)
            if v is MISSING:
                continue
            if not isinstance(v, Mapping) or not v:
                issues.add(f"replay.candidate.{op}", "must be a non-empty map of field -> value", v)
                continue
            maps[op] = dict(v)
        if not any(op in c.value for op in ("set", "scale", "swap")):
            issues.add("replay.candidate", "name at least one delta — `set`, `scale`, or `swap`")
        if policy is not None:
            candidate = CandidateDelta(policy, **maps)
    return ReplayConfig(policies, b.positive("maxSteps", 50_000), mode, secret, candidate)
