"""Load a policy file: parse, check the top level, hand each policy to its kind, report every error."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ._issues import MISSING, Issues, did_you_mean
from ._model import Policy, PolicyConfig
from ._parse import parse_text
from .kinds import PENDING_BLOCKS, PolicyContext, block_kinds, plain_kind

__all__ = ["MAX_POLICY_NAME", "load_config", "load_config_file"]

_TOP = ("version", "defaults", "limiters")
#: Upstream top-level blocks this server does not serve yet.
_PENDING_TOP = ("capture", "replay")
_DEFAULTS = ("prefix",)
#: Longest policy name, in characters.
MAX_POLICY_NAME = 256


def load_config_file(path: str | Path) -> PolicyConfig:
    """Load a YAML or JSON policy file. Raises :class:`~throttlekit.config.PolicyConfigError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read policy file: {exc}") from exc
    return load_config(text, source=str(p))


def load_config(text: str, source: str = "<config>") -> PolicyConfig:
    """Load policies from YAML or JSON text (JSON when it starts with ``{`` or ``[``).

    Every problem of the text is collected and raised together as one
    :class:`~throttlekit.config.PolicyConfigError` (a :class:`~throttlekit.ConfigError`) whose
    ``issues`` name the file, the path (``limiters.<policy>.<field>``), the bad value and what is allowed.
    """
    issues = Issues(source)
    doc = parse_text(text, issues)
    issues.raise_if_any()
    if not isinstance(doc, Mapping):
        issues.add(
            "(top level)",
            "expected a mapping with a `limiters` map",
            _kind_of(doc),
            "keys " + ", ".join(_TOP),
        )
        issues.raise_if_any()
    assert isinstance(doc, Mapping)
    for key in doc:
        if key in _PENDING_TOP:
            issues.add(str(key), "is an upstream block this server does not serve yet; remove it")
        elif key not in _TOP:
            issues.unknown_key("", key, _TOP, where="the top level")
    version = doc.get("version", 1)
    if version != 1 or isinstance(version, bool):
        issues.add("version", "unsupported config version", version, "1")
    default_prefix = _defaults(doc.get("defaults", MISSING), issues)
    policies = _limiters(doc.get("limiters", MISSING), default_prefix, issues)
    issues.raise_if_any()
    return PolicyConfig(source, policies, 1, default_prefix, dict(doc))


def _kind_of(value: Any) -> str:
    return "empty document" if value is None else type(value).__name__


def _defaults(value: Any, issues: Issues) -> str | None:
    if value is MISSING or value is None:
        return None
    if not isinstance(value, Mapping):
        issues.add("defaults", "must be a mapping", value, "keys " + ", ".join(_DEFAULTS))
        return None
    for key in value:
        if key not in _DEFAULTS:
            issues.unknown_key("defaults", key, _DEFAULTS, where="defaults")
    prefix = value.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        issues.add("defaults.prefix", "must be a string", prefix, "any string")
        return None
    return prefix


def _limiters(value: Any, default_prefix: str | None, issues: Issues) -> dict[str, Policy]:
    if value is MISSING:
        issues.add("limiters", "required: a map of policy name to policy")
        return {}
    if not isinstance(value, Mapping) or not value:
        issues.add(
            "limiters",
            "must be a non-empty map of policy name to policy",
            value,
            "a map such as {api: {strategy: gcra, limit: 100, period: 1m}}",
        )
        return {}
    policies: dict[str, Policy] = {}
    blocks = block_kinds()
    for name, spec in value.items():
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_POLICY_NAME:
            issues.add(
                f"limiters.{name}",
                "policy names must be non-empty strings",
                name,
                f"1 to {MAX_POLICY_NAME} characters",
            )
            continue
        ctx = PolicyContext(issues, name, default_prefix)
        if not isinstance(spec, Mapping):
            ctx.error(
                "",
                "expected a mapping of policy fields",
                spec,
                "a map such as {strategy: gcra, limit: 100, period: 1m}",
            )
            continue
        policy = _policy(ctx, spec, blocks)
        if policy is not None:
            _collisions(ctx, policy, policies)
            policies[name] = policy
    return policies


def _collisions(ctx: PolicyContext, policy: Policy, earlier: dict[str, Policy]) -> None:
    """Two policies on one prefix share keys: fine with the same strategy, corrupting otherwise."""
    mine = policy.state()
    if mine is None:
        return
    for other in earlier.values():
        theirs = other.state()
        if theirs is not None and theirs[0] == mine[0] and theirs[1] != mine[1]:
            ctx.error(
                "prefix",
                f"store-key prefix {mine[0]!r} is also used by policy {other.name!r} with a "
                "different strategy: their keys would collide",
                mine[0],
                "a prefix of its own (set `prefix:` on the policy; the default is the policy name)",
            )
            return


def _policy(ctx: PolicyContext, spec: Mapping[str, Any], blocks: dict[str, Any]) -> Policy | None:
    declared = [k for k in spec if k in blocks]
    pending = [k for k in spec if k in PENDING_BLOCKS]
    for key in pending:
        ctx.error(
            str(key),
            "is an upstream policy kind this server does not serve yet",
            allowed="a plain rate policy" + "".join(f", {b}" for b in blocks),
        )
    if len(declared) > 1:
        ctx.error("", "a policy may declare at most one kind block", ", ".join(declared), ", ".join(blocks))
        return None
    kind = blocks[declared[0]] if declared else plain_kind()
    block = {kind.block} if kind.block else set()
    every = set(kind.keys) | block | set(blocks) | set(PENDING_BLOCKS)
    accepted = set(kind.accepted_keys(spec)) | block
    for key in spec:
        if key not in every:
            ctx.error(
                str(key),
                f"unknown key in policy {ctx.name!r}",
                allowed=", ".join(sorted(accepted)),
                hint=did_you_mean(str(key), accepted) or did_you_mean(str(key), kind.keys),
            )
    if pending:
        return None
    known = set(kind.keys) | block
    return kind.build(ctx, {k: v for k, v in spec.items() if k in known})
