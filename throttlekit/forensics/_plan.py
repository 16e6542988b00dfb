"""Policy Plans: what a candidate policy file would change, replayed over recorded traffic.

Each file is classified into a content-addressed policy set: leaf rate policies (a ``strategy`` and no
kind block) that build, and the rest with the reason a cold replay cannot reproduce them. For every
policy leaf in both sets, the current spec is cold-recorded over the corpus arrivals and the candidate
replayed over the same arrivals (:mod:`._engine`: the server's Lua transforms on a private store, the
clock set to each arrival's instant); the fold gives allow->deny and deny->allow flips, divergent steps
and the most flipped keys. Gates turn the plan into a CI verdict.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError, ThrottleKitError, loggable
from ..config._issues import Issues
from ..config._loader import build_policy
from ..config._model import RatePolicy
from ..config._parse import parse_text
from ..strategies import Strategy
from ._corpus import Corpus, merge
from ._engine import fold, record

__all__ = [
    "UNREPLAYABLE",
    "Gates",
    "Leaf",
    "PlanError",
    "PolicySet",
    "classify",
    "gate",
    "load_policy_set",
    "make_plan",
    "render_text",
]

#: Kind blocks a cold replay cannot reproduce, in the order they are checked, with the reason shown.
UNREPLAYABLE: tuple[tuple[str, str], ...] = (
    (
        "tokenBudget",
        "cost meter (tokenBudget) — a debit is metered per process, not a check a replay reproduces",
    ),
    ("fleetBudget", "fleet cost meter (fleetBudget) — the budget is shared live by every instance"),
    ("concurrency", "concurrency axis — a release is not a decision a cold replay can reproduce"),
    (
        "distributedConcurrency",
        "distributed concurrency — the fleet ceiling folds other nodes' live limits",
    ),
    ("twoTier", "two-tier limiter — local leases depend on refill timing, not only on arrivals"),
    ("fairEscrow", "weighted-fair escrow — a tenant's share depends on every other tenant's live burn"),
    (
        "federatedFairEscrow",
        "federated fair escrow — the region's slice is granted by a cross-region pool",
    ),
    ("federated", "federated budget — the region's escrow lease comes from a cross-region coordinator"),
)
NO_STRATEGY = "no leaf-rate strategy declared (not a check-replayable policy)"
#: Default number of most-flipped keys kept per policy in a plan.
TOP_KEYS = 10


class PlanError(ConfigError):
    """A plan cannot be made (unreadable file, a file that is not a policy file)."""


@dataclass(frozen=True)
class Leaf:
    """A replayable policy: its spec as written (``prefix`` resolved) and the strategy it builds."""

    name: str
    spec: dict[str, Any]
    strategy: Strategy
    prefix: str


@dataclass(frozen=True)
class PolicySet:
    """A classified policy file; ``content_hash`` identifies its replay-relevant content."""

    label: str
    content_hash: str
    leaves: dict[str, Leaf] = field(default_factory=dict)
    unreplayable: dict[str, str] = field(default_factory=dict)

    def names(self) -> set[str]:
        return set(self.leaves) | set(self.unreplayable)


def _js(value: Any) -> Any:
    """Numbers as JavaScript prints them (an integral float is an integer), recursively."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _js(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_js(v) for v in value]
    return value


def classify(doc: Any, label: str, source: str = "<config>") -> PolicySet:
    """The policy set of a decoded policy file. Raises :class:`PlanError` when it is not one."""
    if not isinstance(doc, Mapping):
        raise PlanError(f"{source}: config: expected an object at the top level")
    limiters = doc.get("limiters")
    if not isinstance(limiters, Mapping):
        raise PlanError(f"{source}: config: missing `limiters` map")
    defaults = doc.get("defaults")
    default_prefix = defaults.get("prefix") if isinstance(defaults, Mapping) else None
    if not isinstance(default_prefix, str):
        default_prefix = None
    leaves: dict[str, Leaf] = {}
    unreplayable: dict[str, str] = {}
    for name, spec in limiters.items():
        name = str(name)
        if not isinstance(spec, Mapping):
            unreplayable[name] = f"limiters.{name}: expected an object"
            continue
        blocked = next((reason for block, reason in UNREPLAYABLE if block in spec), None)
        if blocked is not None:
            unreplayable[name] = blocked
            continue
        if not isinstance(spec.get("strategy"), str):
            unreplayable[name] = NO_STRATEGY
            continue
        policy, problems = build_policy(name, spec, default_prefix, source)
        if not isinstance(policy, RatePolicy):
            unreplayable[name] = "; ".join(problems) or "does not build a rate policy"
            continue
        resolved = _js({**spec, "prefix": policy.prefix})
        leaves[name] = Leaf(name, dict(sorted(resolved.items())), policy.strategy, policy.prefix)
    content = {
        "policies": [{"name": n, "spec": leaves[n].spec} for n in sorted(leaves)],
        "unreplayable": [{"name": n, "reason": unreplayable[n]} for n in sorted(unreplayable)],
    }
    text = json.dumps(content, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)
    return PolicySet(label, hashlib.sha256(text.encode()).hexdigest(), leaves, unreplayable)


def load_policy_set(path: str | Path, label: str) -> PolicySet:
    """Read and classify a YAML or JSON policy file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read {label} config {p}: {exc}") from exc
    issues = Issues(str(p))
    doc = parse_text(text, issues)
    if issues.items:
        raise PlanError("; ".join(str(i) for i in issues.items))
    return classify(doc, label, str(p))


def _row(policy: str, state: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "policy": policy,
        "state": state,
        "allowToDeny": 0,
        "denyToAllow": 0,
        "flippedTotal": 0,
        "divergent": 0,
        "steps": 0,
        "affectedKeys": 0,
        "topFlippedKeys": [],
    }
    row.update(extra)
    return row


def _refused(policy: str, reason: str, message: str) -> dict[str, Any]:
    return _row(policy, "refused", refusal={"reason": reason, "message": message})


def make_plan(
    current: PolicySet, candidate: PolicySet, corpus: Corpus, top: int = TOP_KEYS
) -> dict[str, Any]:
    """The plan (the ``--json`` document): a diff row per policy, the corpus and a summary."""
    diffs: list[dict[str, Any]] = []
    for name in sorted(set(current.leaves) & set(candidate.leaves)):
        cur, cand = current.leaves[name], candidate.leaves[name]
        arrivals, truncated = merge(corpus.get(name, []))
        if not arrivals:
            diffs.append(_row(name, "empty"))
            continue
        try:
            f = fold(
                arrivals,
                record(cur.strategy, cur.prefix, arrivals),
                record(cand.strategy, cand.prefix, arrivals),
            )
        except ThrottleKitError as exc:
            diffs.append(_refused(name, "replay-failed", loggable(exc)))
            continue
        diffs.append(
            _row(
                name,
                "truncated" if truncated else "ok",
                allowToDeny=f.allow_to_deny,
                denyToAllow=f.deny_to_allow,
                flippedTotal=f.flipped_total,
                divergent=f.divergent,
                steps=f.steps,
                affectedKeys=len(f.keys),
                topFlippedKeys=f.top(top),
            )
        )
    for name in sorted(set(candidate.leaves) & set(current.unreplayable)):
        diffs.append(
            _refused(
                name, "not-replayable", f"the current policy is not replayable: {current.unreplayable[name]}"
            )
        )
    for name in sorted(candidate.unreplayable):
        diffs.append(_refused(name, "not-replayable", candidate.unreplayable[name]))
    counted = [d for d in diffs if d["state"] in ("ok", "truncated")]
    steps = sum(len(t.steps) for traces in corpus.values() for t in traces)
    return {
        "current": {"contentHash": current.content_hash, "label": current.label},
        "candidate": {"contentHash": candidate.content_hash, "label": candidate.label},
        "corpus": {
            "policies": len(corpus),
            "steps": steps,
            "truncated": any(t.truncated for traces in corpus.values() for t in traces),
        },
        "diffs": diffs,
        "summary": {
            "policies": len(diffs),
            "replayable": len(counted),
            "allowToDeny": sum(d["allowToDeny"] for d in counted),
            "denyToAllow": sum(d["denyToAllow"] for d in counted),
            "flippedTotal": sum(d["flippedTotal"] for d in counted),
            "affectedKeys": sum(d["affectedKeys"] for d in counted),
            "added": sorted(candidate.names() - current.names()),
            "removed": sorted(current.names() - candidate.names()),
        },
    }


def _short(key: str) -> str:
    return key if len(key) <= 24 else key[:12] + "…"


def render_text(plan: Mapping[str, Any], top: int = 3) -> str:
    """The human render: header, corpus, one line per policy, added/removed, summary."""
    cur, cand, corpus, s = plan["current"], plan["candidate"], plan["corpus"], plan["summary"]
    lines = [f"Policy Plan: current {cur['contentHash'][:12]} → candidate {cand['contentHash'][:12]}"]
    c = f"corpus: {corpus['steps']} arrival(s) across {corpus['policies']} policy(ies)"
    if corpus["truncated"]:
        c += " — TRUNCATED (diff covers a prefix)"
    lines.append(c)
    for d in plan["diffs"]:
        p, state, refusal = d["policy"], d["state"], d.get("refusal")
        if state == "empty":
            lines.append(f"  {p}: no recorded traffic (nothing to diff)")
        elif refusal is not None and refusal["reason"] == "not-replayable":
            lines.append(f"  {p}: not replayable — {refusal['message']} (observe live via attribution)")
        elif refusal is not None:
            lines.append(f"  {p}: REFUSED — {refusal['reason']}: {refusal['message']}")
        else:
            line = f"  {p}: {d['allowToDeny']} allow→deny, {d['denyToAllow']} deny→allow over {d['steps']} arrival(s)"
            if state == "truncated":
                line += " [prefix]"
            keys = d["topFlippedKeys"][:top]
            if keys:
                line += "  top: " + ", ".join(f"{_short(k['key'])}({k['total']})" for k in keys)
            lines.append(line)
    if s["added"]:
        lines.append("+ added: " + ", ".join(s["added"]))
    if s["removed"]:
        lines.append("- removed: " + ", ".join(s["removed"]))
    lines.append(
        f"Summary: {s['allowToDeny']} newly DENIED, {s['denyToAllow']} newly ALLOWED across "
        f"{s['affectedKeys']} key(s); {s['replayable']}/{s['policies']} policies replayable."
    )
    return "\n".join(lines)


@dataclass(frozen=True)
class Gates:
    """Budgets a plan must stay within (None = unchecked)."""

    max_allow_to_deny: int | None = None
    max_deny_to_allow: int | None = None
    max_flipped_total: int | None = None
    max_affected_keys: int | None = None
    require_all_replayable: bool = False


def gate(plan: Mapping[str, Any], gates: Gates) -> list[str]:
    """Every violation of ``gates`` by ``plan``, one string each (empty: the plan passes)."""
    s = plan["summary"]
    out = []
    for value, limit, what in (
        (s["allowToDeny"], gates.max_allow_to_deny, "allow→deny"),
        (s["denyToAllow"], gates.max_deny_to_allow, "deny→allow"),
        (s["flippedTotal"], gates.max_flipped_total, "total flips"),
        (s["affectedKeys"], gates.max_affected_keys, "affected keys"),
    ):
        if limit is not None and value > limit:
            out.append(f"{what} {value} exceeds max {limit}")
    if gates.require_all_replayable:
        bad = [d for d in plan["diffs"] if d["state"] == "refused"]
        if bad:
            named = ", ".join(
                f"{d['policy']} ({d['refusal']['message'] if d['refusal']['reason'] == 'not-replayable' else d['refusal']['reason']})"
                for d in bad
            )
            out.append(f"{len(bad)} policy(ies) not replayable: {named}")
    return out
