"""The joint-LP lane over gRPC (our extension: a ``jointLp:`` block on a concurrency / unified policy).
Admit's ``hold`` and ``value`` feed the bid-price filter; a policy denial goes over the wire as
``policy_denied: true`` with ``binding_axis ""``, ``lease_id ""`` and the concurrency decision with allowed
false, remaining 0 and no retry. Driven by raw stubs, by our client and by throttlekit-py 0.5.1 unchanged.
Expectations are worked out by hand (bid = p_rate + p_cost * cost + p_conc * hold)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import throttlekit as tk
from tests._support.redis_server import OwnRedis
from tests._support.server import Starter, async_redis_store, make_store, pb
from tests._support.stores import unique_prefix
from tests._support.tkpy import run_tkpy
from throttlekit.config import load_config
from throttlekit.server import redis_store

T0 = 1_700_000_000_000

LEARN = {
    "types": [{"cost": 1, "value": 10, "weight": 1}, {"cost": 1, "value": 2, "weight": 1}],
    "rateBudget": 1,
    "costBudget": 10,
    "adaptive": {"sampleWindow": 4},
}
POLICIES: dict[str, Any] = {
    "lp": {
        "concurrency": {"minLimit": 2, "maxLimit": 2},
        "jointLp": {"duals": {"rate": 1, "cost": 0.5, "conc": 0.25}},
    },
    "lpunified": {
        "strategy": "gcra",
        "limit": 2,
        "period": "10s",
        "burst": 2,
        "concurrency": {"minLimit": 2, "maxLimit": 2},
        "jointLp": {"duals": {"rate": 1, "cost": 1}},
    },
    "plain": {"concurrency": {"minLimit": 2, "maxLimit": 2}},
    "learn": {"concurrency": {"minLimit": 10, "maxLimit": 10}, "jointLp": LEARN},
    "api": {"strategy": "gcra", "limit": 100, "period": "1s"},
}


def _admit(s: Any, policy: str, key: str = "k", **terms: int) -> Any:
    return s.stub.Admit(pb.AdmitRequest(policy=policy, key=key, **terms), timeout=10)


def _d(x: Any) -> tuple[bool, int, int, int, int]:
    return (x.allowed, x.limit, x.remaining, x.reset_at, x.retry_after_ms)


def _release(s: Any, lease_id: str) -> None:
    s.stub.Release(pb.ReleaseRequest(lease_id=lease_id), timeout=10)


def test_hold_and_value_feed_the_filter_and_policy_denied_goes_over_the_wire(
    start_server: Starter, store_kind: str
) -> None:
    clock = tk.ManualClock(T0)
    s = start_server(POLICIES, store=make_store(store_kind, clock), clock=clock)
    # bid 1 + 0.5*4 + 0.25*4 = 4 > 3: a policy denial after the guard granted a slot (returned unused)
    d = _admit(s, "lp", cost=4, value=3, hold=4)
    assert (d.policy_denied, d.binding_axis, d.lease_id, d.lease_expires_at) == (True, "", "", 0)
    assert _d(d.decision) == (False, 2, 0, T0, 0)
    # the hold dropped: bid 3, value 3 is admitted, holding a lease
    ok = _admit(s, "lp", cost=4, value=3)
    assert ok.decision.allowed and ok.lease_id and not ok.policy_denied
    # value 0 on the wire means 1 (as cost): bid 1 + 0.5 = 1.5 > 1; a negative hold is 0
    low = _admit(s, "lp", cost=1, value=0, hold=-5)
    assert low.policy_denied and _d(low.decision) == (False, 2, 0, T0, 0)
    assert _admit(s, "lp", cost=1, value=2, hold=-5).decision.allowed  # bid 1.5: slot 2 of 2
    assert _admit(s, "lp", cost=1, value=100).binding_axis == "concurrency"  # full: never priced
    _release(s, ok.lease_id)

    # unified: bid 1 + 1*cost; the denials never reach the rate axis (gcra burst 2 stays unspent)
    for _ in range(3):
        u = _admit(s, "lpunified", "u", cost=1, value=1)
        assert (u.policy_denied, u.binding_axis, u.decision.allowed) == (True, "", False)
    granted = [_admit(s, "lpunified", "u", cost=1, value=2) for _ in range(2)]
    assert [g.decision.allowed for g in granted] == [True, True]
    for g in granted:
        _release(s, g.lease_id)
    r = _admit(s, "lpunified", "u", cost=1, value=2)  # priced and passed; now the rate axis binds
    assert (r.policy_denied, r.binding_axis, r.decision.allowed) == (False, "rate", False)

    # no jointLp block: exactly as before (hold and value validated and ignored)
    p = _admit(s, "plain", cost=1000, value=1, hold=1000)
    assert p.decision.allowed and not p.policy_denied and p.lease_id


def test_the_adaptive_learner_lives_in_the_shared_store(start_server: Starter, store_kind: str) -> None:
    clock = tk.ManualClock(T0)
    prefix = unique_prefix("tklp")
    store = make_store(store_kind, clock) if store_kind == "memory" else async_redis_store(prefix)
    s = start_server(POLICIES, store=store, clock=clock)
    # jointLp/adaptive-adopts-learned: prior duals (10, 0) deny four value-3 admits, then the learned
    # duals (3, 0) are adopted and value 3 passes
    out = [_admit(s, "learn", cost=1, value=3) for _ in range(4)]
    assert [o.policy_denied for o in out] == [True] * 4
    ok = _admit(s, "learn", cost=1, value=3)
    assert ok.decision.allowed and not ok.policy_denied
    if store_kind == "redis":
        # a second server on the same Redis reads the frozen learner: value 3 passes from its first admit
        s2 = start_server(POLICIES, store=async_redis_store(prefix), clock=clock)
        assert _admit(s2, "learn", cost=1, value=3).decision.allowed
        assert _admit(s2, "learn", cost=1, value=2).policy_denied  # bid 3


@pytest.mark.redis
def test_a_learner_store_outage_prices_with_the_prior_duals(start_server: Starter) -> None:
    own = OwnRedis()
    own.start()
    try:
        s = start_server({"learn": POLICIES["learn"]}, store=redis_store(own.url, "lp"), fail="closed")
        assert _admit(s, "learn", cost=1, value=3).policy_denied  # learning, priced with the prior: bid 10
        own.stop()
        # the learner cannot be read: the prior duals (10, 0) price on the server's private store
        assert _admit(s, "learn", cost=1, value=3).policy_denied
        ok = _admit(s, "learn", cost=1, value=10)
        assert ok.decision.allowed and ok.lease_id
    finally:
        own.stop()


def test_the_tap_event_of_a_policy_denial_says_so(start_server: Starter) -> None:
    clock = tk.ManualClock(T0)
    s = start_server(POLICIES, store=make_store("memory", clock), clock=clock)
    events: list[Any] = []
    s.service.tap.register(events.append)
    _admit(s, "lp", cost=4, value=3, hold=4)
    _admit(s, "lp", cost=4, value=3)
    assert [(e.op, e.allowed, e.axis, e.cost) for e in events] == [
        ("admit", False, "policy", 4),
        ("admit", True, "", 4),
    ]


def test_our_client_sees_policy_denied(start_server: Starter) -> None:
    s = start_server(POLICIES)
    with tk.ServiceBackend(s.target, timeout=5) as c:
        with c.admit("lp", "k", 4, hold=4, value=3) as a:
            assert (a.allowed, a.policy_denied, a.binding_axis, a.held) == (False, True, "", False)
        with c.admit("lp", "k", 4, value=3) as a:
            assert (a.allowed, a.policy_denied, a.held) == (True, False, True)


TKPY = r"""
import json, sys
from throttlekit import ServiceBackend
out = []
with ServiceBackend(sys.argv[1]) as b:
    with b.admit("lp", "k", 4, hold=4, value=3) as a:
        out.append([a.allowed, a.policy_denied, a.binding_axis, a.held, a.lease_id])
    with b.admit("lp", "k", 4, value=3) as a:
        out.append([a.allowed, a.policy_denied, a.binding_axis, a.held, bool(a.lease_id)])
    with b.admit("plain", "k", 1000, hold=1000, value=1) as a:
        out.append([a.allowed, a.policy_denied, a.binding_axis, a.held, bool(a.lease_id)])
print(json.dumps(out))
"""


@pytest.mark.slow
def test_throttlekit_py_admit_with_value_and_hold_sees_policy_denied(start_server: Starter) -> None:
    s = start_server(POLICIES)
    out = json.loads(run_tkpy(TKPY, s.target))
    assert out == [
        [False, True, "", False, ""],
        [True, False, "", True, True],
        [True, False, "", True, True],
    ]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            {"strategy": "gcra", "limit": 5, "period": "1s", "jointLp": {"duals": {"rate": 1, "cost": 1}}},
            "limiters.p.jointLp: is only valid in a policy with a 'concurrency' or 'distributedConcurrency' block; policy 'p' has none",
        ),
        (
            {"concurrency": {"minLimit": 1, "maxLimit": 1}, "jointLp": {"duals": {"rate": -1, "cost": 1}}},
            "limiters.p.jointLp.duals.rate: is out of range (got -1)",
        ),
        (
            {
                "concurrency": {"minLimit": 1, "maxLimit": 1},
                "jointLp": {"types": [{"cost": 1, "value": 1}], "rateBudget": 1, "costBudget": 1},
            },
            "limiters.p.jointLp.types[0].weight: is missing",
        ),
        (
            {
                "concurrency": {"minLimit": 1, "maxLimit": 1},
                "jointLp": {"duals": {"rate": 1, "cost": 1}, "adaptive": {"sampleWindow": 3}},
            },
            "limiters.p.jointLp.adaptive: needs the workload form",
        ),
        (
            {
                "distributedConcurrency": {"minLimit": 1, "maxLimit": 1},
                "jointLp": {"duals": {"rate": 1, "cost": 1}, "rateBudget": 2},
            },
            "limiters.p.jointLp.duals: is given together with a workload",
        ),
        (
            {"concurrency": {"minLimit": 1, "maxLimit": 1}, "jointLp": "on"},
            "limiters.p.jointLp: must be a mapping",
        ),
    ],
)
def test_the_block_is_validated_strictly(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(tk.ConfigError) as exc:
        load_config(json.dumps({"version": 1, "limiters": {"p": policy}}))
    assert message in str(exc.value)


def test_the_startup_description_names_the_filter() -> None:
    cfg = load_config(
        json.dumps({"version": 1, "limiters": {"lp": POLICIES["lp"], "learn": POLICIES["learn"]}})
    )
    assert "joint-lp duals rate 1, cost 0.5, conc 0.25" in cfg.policies["lp"].describe()
    assert "joint-lp on a workload of 2 type(s), adaptive over 4 admits" in cfg.policies["learn"].describe()
