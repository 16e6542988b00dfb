"""The PyPI client ``throttlekit-py`` 0.5.x works against our server unchanged.

Its ``ServiceBackend`` runs in its own virtual environment (it also imports as ``throttlekit``), created
on first use and cached (tests/tkpy.py). Against a manual-clock server it drives every strategy; our own
client replays the same calls on twin policies, and every decision, forecast and error type must match.
Its vendored proto must also describe exactly our contract.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

import throttlekit as tk
from tests._support.proto import breaking_changes, current
from tests._support.server import Starter, make_store
from tests._support.tkpy import run_tkpy

pytestmark = pytest.mark.slow

STRATEGIES = {
    "gcra": {"strategy": "gcra", "limit": 10, "period": "1s", "burst": 4},
    "tb": {"strategy": "tokenBucket", "capacity": 5, "refillPerSec": 2},
    "fw": {"strategy": "fixedWindow", "limit": 5, "period": "1m"},
    "sw": {"strategy": "slidingWindow", "limit": 5, "period": "10s", "buckets": 5},
    "swl": {"strategy": "slidingWindowLog", "limit": 5, "period": "10s"},
    "quota": {"strategy": "quota", "limit": 5, "resetCadence": "calendar-day"},
}

# One script, run by both clients: the sequence of calls and what came back (errors by class name).
SCRIPT = r"""
import json, sys
from dataclasses import asdict
from throttlekit import ServiceBackend

def run(backend, policy):
    out = []
    def rec(fn, *a, **k):
        try:
            r = fn(*a, **k)
        except Exception as exc:
            out.append(["error", type(exc).__name__])
            return
        out.append([asdict(x) for x in r] if isinstance(r, list) else asdict(r))
    for _ in range(6):
        rec(backend.check, policy, "alice")
    rec(backend.check, policy, "bob", 3)
    rec(backend.check, policy, "bob", 0)
    rec(backend.check_many, policy, ["a", "b", "a", "a"], 2)
    rec(backend.check_many, policy, [])
    rec(backend.peek, policy, "alice")
    rec(backend.peek, policy, "carol")
    rec(backend.forecast, policy, "bob", 2)
    rec(backend.forecast, policy, "dave")
    rec(backend.check, "no-such-policy", "alice")
    rec(backend.debit, policy, "alice", 10)
    return out

if __name__ == "__main__":
    target, policies = sys.argv[1], json.loads(sys.argv[2])
    with ServiceBackend(target) as b:
        print(json.dumps({p: run(b, p) for p in policies}))
"""
ERROR_NAMES = {"PolicyNotFoundError", "OperationNotSupportedError"}


def _ours(target: str, policies: list[str]) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "not_main"}
    exec(compile(SCRIPT, "<script>", "exec"), namespace)
    with tk.ServiceBackend(target, timeout=10) as b:
        return {p: namespace["run"](b, p) for p in policies}


def test_throttlekit_py_service_backend_gets_our_decisions(start_server: Starter, store_kind: str) -> None:
    clock = tk.ManualClock(1_700_000_000_000)
    policies = {
        **{f"py-{k}": v for k, v in STRATEGIES.items()},
        **{f"us-{k}": v for k, v in STRATEGIES.items()},
    }
    served = start_server(policies, store=make_store(store_kind, clock), clock=clock)
    theirs = json.loads(run_tkpy(SCRIPT, served.target, json.dumps([f"py-{k}" for k in STRATEGIES])))
    ours = _ours(served.target, [f"us-{k}" for k in STRATEGIES])
    for kind in STRATEGIES:
        assert theirs[f"py-{kind}"] == ours[f"us-{kind}"], kind
        errors = {tuple(x) for x in theirs[f"py-{kind}"] if isinstance(x, list) and x and x[0] == "error"}
        assert errors == {("error", name) for name in ERROR_NAMES}
    # a sanity anchor that the sequence did real work: the fixed window ran out for alice
    assert [d["remaining"] for d in theirs["py-fw"][:6]] == [4, 3, 2, 1, 0, 0]


def test_their_vendored_proto_is_our_contract() -> None:
    out = run_tkpy(
        "from throttlekit._generated import throttlekit_pb2 as pb; print(pb.DESCRIPTOR.serialized_pb.hex())"
    )
    theirs = descriptor_pb2.FileDescriptorProto.FromString(bytes.fromhex(out.strip()))
    ours = current()
    assert breaking_changes(theirs, ours) == []
    assert breaking_changes(ours, theirs) == []


# The cost axis and two-tier leasing through throttlekit-py: Check on leased policies, Debit on budgets.
COST_POLICIES = {
    "lease": {"strategy": "fixedWindow", "limit": 10, "period": "1m", "twoTier": {"batch": 4}},
    "coupled": {
        "strategy": "gcra",
        "limit": 10,
        "period": "1s",
        "burst": 6,
        "twoTier": {"mode": "leased", "batch": 3, "windowCoupled": True},
    },
    "budget": {"tokenBudget": {"budget": 10, "windowMs": 60000}},
    "fleet": {"fleetBudget": {"budget": 10, "windowMs": 60000}},
}
COST_SCRIPT = r"""
import json, sys
from dataclasses import asdict
from throttlekit import ServiceBackend

def run(backend, p):
    out = []
    def rec(fn, *a):
        try:
            r = fn(*a)
        except Exception as exc:
            out.append(["error", type(exc).__name__])
            return
        out.append([asdict(x) for x in r] if isinstance(r, list) else asdict(r))
    if "lease" in p or "coupled" in p:
        for _ in range(9):
            rec(backend.check, p, "alice")
        rec(backend.check, p, "bob", 5)
        rec(backend.check_many, p, ["a", "b", "a"])
        rec(backend.peek, p, "alice")
        rec(backend.debit, p, "alice", 1)
    else:
        for n in (4, 0, 5, 1, 2):
            rec(backend.debit, p, "alice", n)
        rec(backend.debit, p, "bob", 12)
        rec(backend.debit, p, "bob", 1)
        rec(backend.check, p, "alice")
    return out

if __name__ == "__main__":
    target, policies = sys.argv[1], json.loads(sys.argv[2])
    with ServiceBackend(target) as b:
        print(json.dumps({p: run(b, p) for p in policies}))
"""


def test_throttlekit_py_checks_leased_policies_and_debits_budgets(
    start_server: Starter, store_kind: str
) -> None:
    clock = tk.ManualClock(1_700_000_040_000)
    policies = {
        **{f"py-{k}": {**v} for k, v in COST_POLICIES.items()},
        **{f"us-{k}": {**v} for k, v in COST_POLICIES.items()},
    }
    for name, spec in policies.items():
        if "fleetBudget" in spec:
            spec["fleetBudget"] = {**spec["fleetBudget"], "prefix": name}
    served = start_server(policies, store=make_store(store_kind, clock), clock=clock)
    theirs = json.loads(run_tkpy(COST_SCRIPT, served.target, json.dumps([f"py-{k}" for k in COST_POLICIES])))
    namespace: dict[str, Any] = {"__name__": "not_main"}
    exec(compile(COST_SCRIPT, "<script>", "exec"), namespace)
    with tk.ServiceBackend(served.target, timeout=10) as b:
        ours = {p: namespace["run"](b, p) for p in [f"us-{k}" for k in COST_POLICIES]}
    for kind in COST_POLICIES:
        assert theirs[f"py-{kind}"] == ours[f"us-{kind}"], kind
    # anchors worked out by hand: a fixed window of 10 leased 4 at a time (10 = 4 + 4 + 2 stranded) ...
    lease = theirs["py-lease"]
    assert [d["remaining"] for d in lease[:8]] == [3, 2, 1, 0, 3, 2, 1, 0]
    assert lease[8] == {"allowed": False, "limit": 10, "remaining": 2, "reset_at": 1_700_000_100_000,
                        "retry_after_ms": 60_000}  # fmt: skip
    assert lease[-2:] == [["error", "OperationNotSupportedError"]] * 2  # peek and debit
    # ... and a budget of 10: 4, 1 (0 means 1), 5 crossing to 10, then refused until the window end
    budget = theirs["py-budget"]
    assert [(d["allowed"], d["remaining"]) for d in budget[:5]] == [
        (True, 6), (True, 5), (True, 0), (False, 0), (False, 0)
    ]  # fmt: skip
    assert budget[3]["retry_after_ms"] == 60_000
    assert (budget[5]["allowed"], budget[5]["remaining"], budget[6]["allowed"]) == (True, 0, False)
    assert budget[-1] == ["error", "OperationNotSupportedError"]
    assert theirs["py-fleet"] == budget
