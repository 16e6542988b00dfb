"""Load a policy file: parse, check the top level, hand each policy to its kind, report every error."""

from __future__ import annotations

import gc
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError, quote
from ._forensics import ReplayConfig, capture_block, replay_block
from ._issues import MISSING, Issues, did_you_mean
from ._model import Policy, PolicyConfig, RatePolicy
from ._parse import parse_text
from .kinds import PENDING_BLOCKS, PolicyContext, block_kinds, plain_kind

__all__ = ["MAX_POLICY_NAME", "build_policy", "load_config", "load_config_file"]

_TOP = ("version", "defaults", "limiters", "capture", "replay")
#: Upstream top-level blocks this server does not serve yet.
_PENDING_TOP: tuple[str, ...] = ()
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
    paused = gc.isenabled()
    if paused:  # loading allocates millions of acyclic objects: collecting cycles meanwhile is pure cost
        gc.disable()
    try:
        return _load(text, source)
    finally:
        if paused:
            gc.enable()


def _load(text: str, source: str) -> PolicyConfig:
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
    shadow: set[str] = set()
    policies = _limiters(doc.get("limiters", MISSING), default_prefix, issues, shadow)
    capture = capture_block(doc["capture"], issues) if "capture" in doc else None
    replay = replay_block(doc["replay"], issues) if "replay" in doc else None
    if replay is not None:
        _replay_names(replay, policies, issues)
    issues.raise_if_any()
    return PolicyConfig(
        source,
        policies,
        1,
        default_prefix,
        dict(doc),
        shadow=frozenset(shadow),
        capture=capture,
        replay=replay,
    )


def _replay_names(replay: ReplayConfig, policies: Mapping[str, Policy], issues: Issues) -> None:
    """``replay.policies`` and ``replay.candidate.policy`` name leaf rate policies of this file."""
    leaves = [n for n, p in policies.items() if isinstance(p, RatePolicy)]
    named = [("replay.policies", n) for n in replay.policies]
    if replay.candidate is not None:
        named.append(("replay.candidate.policy", replay.candidate.policy))
    for path, name in named:
        if name not in leaves:
            issues.add(
                path,
                "names no leaf rate policy of this file (only plain rate policies have replay shadows)",
                name,
                ", ".join(leaves) or "(none)",
                did_you_mean(name, leaves),
            )


def build_policy(
    name: str, spec: Mapping[str, Any], default_prefix: str | None = None, source: str = "<config>"
) -> tuple[Policy | None, list[str]]:
    """One policy from its raw mapping, checked exactly as the loader checks it inside a file:
    ``(policy, [])`` or ``(None, [each problem])``. Policy plans classify a file policy by policy with it
    (a policy that does not build is reported, not fatal)."""
    issues = Issues(source)
    policy = None
    if _valid_name(name, issues):
        ctx = PolicyContext(issues, name, default_prefix)
        if isinstance(spec, Mapping):
            if "shadow" in spec:
                spec = _shadow(ctx, spec, set())
            policy = _policy(ctx, spec, block_kinds())
        else:
            ctx.error("", "expected a mapping of policy fields", spec)
    if issues.items:
        return None, [str(i)[len(i.source) + 2 :] for i in issues.items]
    return policy, []


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


def _limiters(
    value: Any, default_prefix: str | None, issues: Issues, shadow: set[str] | None = None
) -> dict[str, Policy]:
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
        if not _valid_name(name, issues):
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
        if "shadow" in spec:
            spec = _shadow(ctx, spec, shadow if shadow is not None else set())
        policy = _policy(ctx, spec, blocks)
        if policy is not None:
            policies[name] = policy
    _namespaces(policies, issues)
    return policies


#: C0 controls, DEL and C1 controls: never valid in a policy name (logs, metrics and errors print it).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: Names the upstream's config parser refuses anywhere in a file (a file using one would not load there).
_RESERVED = ("__proto__", "constructor", "prototype")


def _valid_name(name: Any, issues: Issues) -> bool:
    """Policy names: non-blank strings of at most MAX_POLICY_NAME characters, no control characters."""
    allowed = f"1 to {MAX_POLICY_NAME} characters, no control characters"
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_POLICY_NAME:
        problem = (
            "policy names must be non-empty strings"
            if not isinstance(name, str) or not name.strip()
            else f"policy name is {len(name)} characters long"
        )
        issues.add(f"limiters.{quote(name)}", problem, name, allowed)
        return False
    control = _CONTROL.search(name)
    if control is not None:
        issues.add(
            f"limiters.{quote(name)}",
            f"policy name contains the control character U+{ord(control.group()):04X}",
            name,
            allowed,
        )
        return False
    if name in _RESERVED:
        issues.add(
            f"limiters.{name}",
            "is reserved (the upstream server refuses this key in any config file)",
            allowed="any other name",
        )
        return False
    return True


def _namespaces(policies: dict[str, Policy], issues: Issues) -> None:
    """Store keys are ``<prefix>:<key>`` unescaped, so two policies share keys when their prefixes are
    equal (allowed only for the same state layout: one counter served under two names) or when one
    prefix plus ``:`` begins the other (policy ``a``'s key ``b:c`` is policy ``a:b``'s key ``c``), and an
    empty prefix (raw keys) meets every other. Linear: each prefix is looked up once per ``:`` in it."""
    owners: dict[str, tuple[str, object]] = {}
    for name, policy in policies.items():
        state = policy.state()
        if state is None:
            continue
        prefix, layout = state
        first = owners.setdefault(prefix, (name, layout))
        if first[0] != name and first[1] != layout:
            issues.add(
                f"limiters.{name}.prefix",
                f"store-key prefix {quote(prefix)} is also used by policy {quote(first[0])} with a "
                "different strategy: their keys would collide",
                prefix,
                "a prefix of its own (set `prefix:` on the policy; the default is the policy name)",
            )
    empty = owners.get("")
    if empty is not None and len(owners) > 1:
        other = next(p for p in owners if p)
        issues.add(
            f"limiters.{empty[0]}.prefix",
            "an empty store-key prefix puts this policy's keys among every other policy's (key "
            f"{quote(other + ':k')} of this policy is key 'k' of policy {quote(owners[other][0])})",
            "",
            "a non-empty prefix",
        )
    for prefix, (name, _) in owners.items():
        cut = prefix.find(":")
        while cut > 0:
            outer = owners.get(prefix[:cut])
            if outer is not None:
                issues.add(
                    f"limiters.{name}.prefix",
                    f"store-key prefix {quote(prefix)} lies inside prefix {quote(prefix[:cut])} of policy "
                    f"{quote(outer[0])}: key {quote(prefix[cut + 1 :] + ':k')} of {quote(outer[0])} is key 'k' "
                    "of this policy",
                    prefix,
                    f"a prefix that does not begin with {quote(prefix[:cut] + ':')} (and that no other "
                    "policy's prefix plus ':' begins)",
                )
                break
            cut = prefix.find(":", cut + 1)


_ADMITTER_BLOCKS = ("concurrency", "distributedConcurrency")


def _shadow(ctx: PolicyContext, spec: Mapping[str, Any], shadow: set[str]) -> dict[str, Any]:
    """Read the policy-level ``shadow`` flag (every kind): decided and counted, always answered allowed."""
    value = spec["shadow"]
    if not isinstance(value, bool):
        ctx.error(
            "shadow", "must be true or false", value, "true (decide and count, answer allowed) or false"
        )
    elif value and any(block in spec for block in _ADMITTER_BLOCKS):
        ctx.error(
            "shadow",
            "is not supported on admitter policies (a shadow admit would report a slot it does not hold)",
            value,
            "false, or shadow on a rate, twoTier or budget policy",
        )
    elif value:
        shadow.add(ctx.name)
    return {k: v for k, v in spec.items() if k != "shadow"}


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
            rate_key = key in plain_kind().keys  # a rate field: any plain policy takes it
            owners = [] if rate_key else [b for b, k in blocks.items() if key in k.keys]
            if owners:  # a key of another kind (jointLp without a concurrency block, say)
                ctx.error(
                    str(key),
                    f"is only valid in a policy with a {' or '.join(repr(b) for b in owners)} block; "
                    f"policy {ctx.name!r} has {repr(kind.block) + ' block' if kind.block else 'none'}",
                    allowed=", ".join(sorted(accepted)),
                )
                continue
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
