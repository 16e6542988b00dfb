"""The embedded joint-LP admitter (spec 10.3 step 2): Admitter(policy="joint-lp", joint_lp=...). A policy
denial returns the held slot unused (no RTT sample), answers the concurrency decision with allowed false,
remaining 0 and no retry, has no binding axis, and never consults the rate axis. Numbers are worked out
by hand (the duals of the workloads are those of vectors fluidLp/* and jointLp/*)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import throttlekit as tk
from throttlekit.concurrency import concurrency_params
from throttlekit.jointlp import BidFilter, Duals, JointLp, LpType, joint_lp

T0 = 1_700_000_000_000
DUALS = {"duals": {"rate": 1, "cost": 0.5, "conc": 0.25}}


def _admitter(clock: tk.ManualClock, joint: Any = DUALS, rate: Any = None, **guard: Any) -> tk.Admitter:
    params = concurrency_params(**(guard or {"min_limit": 2, "max_limit": 2}))
    return tk.Admitter(params, rate=rate, clock=clock, policy="joint-lp", joint_lp=joint)


def test_a_policy_denial_returns_the_slot_unused_and_never_consults_the_rate_axis() -> None:
    clock = tk.ManualClock(T0)
    rate = tk.Limiter(tk.Gcra(2, "10s"), clock=clock)
    adm = _admitter(clock, rate=rate)
    held = adm.admit("u", cost=1, value=2)  # bid 1 + 0.5 = 1.5 <= 2: admitted, spends a rate token
    assert (held.allowed, held.held, held.policy_denied) == (True, True, False)
    assert rate.peek("u").remaining == 1
    clock.advance(30)
    # bid 1 + 0.5*4 + 0.25*4 = 4 > 3: denied by the policy, after the guard granted slot 2 of 2
    d = adm.admit("u", cost=4, value=3, hold=4)
    assert (d.allowed, d.held, d.policy_denied, d.binding_axis, d.lease_id) == (False, False, True, "", "")
    # the concurrency decision (limit 2, reset now) with allowed false, remaining 0, retry 0
    assert d.decision == tk.Decision(False, 2, 0, T0 + 30, 0)
    assert rate.peek("u").remaining == 1  # the rate axis was never consulted: nothing debited
    assert adm.inflight == 1 and adm.guard.last_rtt == 0  # the slot went back without an RTT sample
    d.release()  # a no-op: nothing held
    assert adm.inflight == 1
    # without the hold the bid is 3: value 3 is admitted (3 < 3 is false) and spends the second token
    ok = adm.admit("u", cost=4, value=3)
    assert (ok.allowed, ok.policy_denied) == (True, False) and rate.peek("u").remaining == 0
    ok.release()
    held.release()
    assert adm.inflight == 0 and adm.last_verdict is not None and adm.last_verdict.bid == 3


def test_a_concurrency_denial_comes_first_and_the_filter_is_not_consulted() -> None:
    clock = tk.ManualClock(T0)
    spec = {
        "types": [{"cost": 1, "value": 10, "weight": 1}, {"cost": 1, "value": 2, "weight": 1}],
        "rateBudget": 1,
        "costBudget": 10,
        "adaptive": {"sampleWindow": 3},
    }
    adm = _admitter(clock, spec, min_limit=1, max_limit=1)
    a = adm.admit(value=10)  # bid 10 (prior duals (10, 0)): admitted; the learner tallied 1
    b = adm.admit(value=1)  # the guard is full: a concurrency denial, never priced
    assert (b.allowed, b.binding_axis, b.policy_denied) == (False, "concurrency", False)
    assert adm.last_verdict is not None and adm.last_verdict.seen == 1
    a.release()
    c = adm.admit(value=1)  # priced: 1 < 10
    assert (c.allowed, c.policy_denied) == (False, True) and adm.last_verdict.seen == 2


def test_the_hold_counts_only_with_a_concurrency_dual() -> None:
    clock = tk.ManualClock(T0)
    adm = _admitter(clock, {"duals": {"rate": 2, "cost": 1}})
    assert adm.admit(cost=1, value=3, hold=1_000_000).allowed  # bid 3: the hold has no price
    adm2 = _admitter(clock)
    assert adm2.admit(cost=1, value=1.75, hold=1).allowed  # bid 1 + 0.5 + 0.25 = 1.75
    assert adm2.admit(cost=1, value=1.74, hold=1).policy_denied
    # an infinite hold adds no term (spec: finite and > 0): bid 1.5 <= 1.75
    assert adm2.admit(cost=1, value=1.75, hold=float("inf")).allowed


def test_the_workload_is_solved_at_construction_and_the_adaptive_learner_switches() -> None:
    clock = tk.ManualClock(T0)
    spec = {
        "types": [{"cost": 1, "value": 10, "weight": 1}, {"cost": 1, "value": 2, "weight": 1}],
        "rateBudget": 1,
        "costBudget": 10,
        "adaptive": {"sampleWindow": 4},
    }
    adm = _admitter(clock, spec, min_limit=10, max_limit=10)
    assert adm.bid is not None and adm.bid.duals == Duals(10.0, 0.0, None)
    # jointLp/adaptive-adopts-learned: four admits of value 3 are denied at the prior's bid 10, then the
    # learned duals (3, 0) replay to revenue 6 > 0 and are adopted
    out = [adm.admit(cost=1, value=3) for _ in range(4)]
    assert [(a.allowed, a.policy_denied) for a in out] == [(False, True)] * 4
    assert adm.inflight == 0
    assert adm.last_verdict is not None and adm.last_verdict.phase == "frozen-learned"
    after = adm.admit(cost=1, value=3)
    assert after.allowed and adm.last_verdict.bid == 3
    # the learner's state is a hash beside the guard, in the guard's store
    dumped = adm.guard.store.dump("guard:jointlp")
    assert dumped is not None and dumped[0] == "hash"


def test_async_admitter_applies_the_filter() -> None:
    async def main() -> None:
        clock = tk.ManualClock(T0)
        rate = tk.AsyncLimiter(tk.Gcra(5, "1s"), clock=clock)
        adm = tk.AsyncAdmitter(
            concurrency_params(min_limit=2, max_limit=2),
            rate=rate,
            clock=clock,
            policy="joint-lp",
            joint_lp=DUALS,
        )
        d = await adm.admit("k", cost=4, value=3, hold=4)
        assert (d.allowed, d.policy_denied, d.binding_axis, d.held) == (False, True, "", False)
        async with await adm.admit("k", cost=4, value=3) as ok:
            assert ok.allowed and ok.held and adm.inflight == 1
        assert adm.inflight == 0

    asyncio.run(main())


def test_joint_lp_with_fused_axes_prices_before_the_fused_call() -> None:
    from throttlekit.concurrency import FusedAxes

    clock = tk.ManualClock(T0)
    store = tk.MemoryStore(clock=clock)
    fused = FusedAxes(tk.Gcra(2, "1s"), tk.TokenBucket(10, 5), store=store, clock=clock)
    adm = tk.Admitter(
        concurrency_params(min_limit=2, max_limit=2),
        fused=fused,
        clock=clock,
        policy="joint-lp",
        joint_lp=DUALS,
    )
    d = adm.admit("k", cost=4, value=2)  # bid 3 > 2: denied before the fused axes: nothing debited
    assert d.policy_denied
    ok = adm.admit("k", cost=4, value=3)
    assert ok.allowed and ok.decision.remaining == 1  # gcra burst 2: the first token spent here
    ok.release()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "greedy"}, "policy"),
        ({"policy": "joint-lp"}, 'joint_lp is missing: policy "joint-lp"'),
        ({"joint_lp": DUALS}, "policy is marginal, so joint_lp would be ignored"),
        ({"policy": "joint-lp", "joint_lp": {"duals": {"rate": 1}}}, "jointLp.duals.cost is missing"),
        (
            {
                "policy": "joint-lp",
                "joint_lp": {"duals": {"rate": 1, "cost": 1}, "adaptive": {"sampleWindow": 5}},
            },
            "jointLp.adaptive needs the workload form",
        ),
        (
            {
                "policy": "joint-lp",
                "joint_lp": {
                    "types": [{"cost": 1, "value": 1, "weight": 1, "hold": 1}],
                    "rateBudget": 1,
                    "costBudget": 1,
                    "concBudget": 1,
                    "adaptive": {"sampleWindow": 5},
                },
            },
            "jointLp.adaptive is incompatible with a concurrency dual",
        ),
        (
            {
                "policy": "joint-lp",
                "joint_lp": {
                    "types": [{"cost": 1, "value": 1, "weight": 0}],
                    "rateBudget": 1,
                    "costBudget": 1,
                    "adaptive": {"sampleWindow": 5},
                },
            },
            "all have weight 0",
        ),
        (
            {
                "policy": "joint-lp",
                "joint_lp": {
                    "types": [{"cost": 1, "value": 1, "weight": 1}],
                    "rateBudget": 1,
                    "costBudget": 1,
                    "adaptive": {"sampleWindow": 10_001},
                },
            },
            "jointLp.adaptive.sampleWindow is out of range, got 10001",
        ),
        (
            {"policy": "joint-lp", "joint_lp": {"duals": {"rate": 1, "cost": 1}, "types": []}},
            "jointLp.types must not be empty",
        ),
        (
            {"policy": "joint-lp", "joint_lp": {"dual": {"rate": 1, "cost": 1}}},
            "jointLp.dual is not a jointLp field",
        ),
        ({"policy": "joint-lp", "joint_lp": [1, 2]}, "jointLp: must be a mapping, got [1, 2]"),
    ],
)
def test_configuration_errors_name_the_field_and_what_is_allowed(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(tk.ConfigError) as exc:
        tk.Admitter(concurrency_params(min_limit=1, max_limit=1), **kwargs)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"value": 0}, "admit.value is out of range, got 0"),
        ({"value": float("nan")}, "admit.value must be a finite number"),
        ({"cost": -1}, "admit.cost is out of range, got -1"),
        ({"hold": -1}, "admit.hold must be a number >= 0, got -1"),
        ({"hold": "x"}, "admit.hold must be a number >= 0"),
    ],
)
def test_admit_terms_are_validated(terms: dict[str, Any], message: str) -> None:
    adm = _admitter(tk.ManualClock(T0))
    with pytest.raises(tk.ConfigError) as exc:
        adm.admit("k", **terms)
    assert message in str(exc.value)
    assert adm.inflight == 0  # checked before the guard: nothing held


def test_typed_config_round_trip_and_fingerprint() -> None:
    a = JointLp(types=(LpType(1, 4, 2), LpType(3, 6, 2)), rate_budget=4, cost_budget=4, sample_window=8)
    b = joint_lp(
        {
            "types": [{"cost": 1, "value": 4, "weight": 2}, {"cost": 3, "value": 6, "weight": 2}],
            "rateBudget": 4,
            "costBudget": 4,
            "adaptive": {"sampleWindow": 8},
        }
    )
    assert a == b and a.fingerprint() == b.fingerprint() and a.adaptive
    assert BidFilter(a).duals == Duals(0.0, 2.0, None)
    c = joint_lp(
        {
            "types": [{"cost": 1, "value": 4, "weight": 2}, {"cost": 3, "value": 6, "weight": 2}],
            "rateBudget": 4,
            "costBudget": 5,
            "adaptive": {"sampleWindow": 8},
        }
    )
    assert c.fingerprint() != a.fingerprint()


def test_a_changed_config_restarts_the_learner() -> None:
    store = tk.MemoryStore()
    base = {
        "types": [{"cost": 1, "value": 10, "weight": 1}, {"cost": 1, "value": 2, "weight": 1}],
        "rateBudget": 1,
        "costBudget": 10,
    }
    f1 = BidFilter({**base, "adaptive": {"sampleWindow": 2}}, store=store, key="L")
    assert [f1.check(1, 3).phase for _ in range(2)] == ["learning", "frozen-learned"]
    f2 = BidFilter({**base, "adaptive": {"sampleWindow": 3}}, store=store, key="L")
    assert f2.check(1, 3).phase == "learning" and f2.check(1, 3).seen == 2
    assert f1.check(1, 3).phase == "learning"  # f1's fingerprint differs again: it starts over too


def test_the_65th_distinct_type_is_priced_but_not_tallied() -> None:
    store = tk.MemoryStore()
    spec = {
        "types": [{"cost": 1, "value": 1, "weight": 1}],
        "rateBudget": 1,
        "costBudget": 1,
        "adaptive": {"sampleWindow": 100},
    }
    f = BidFilter(spec, store=store, key="L")  # prior duals: one type, (0, 1)
    for i in range(70):
        v = f.check(1, 1 + i)
        assert v.seen == i + 1 and v.phase == "learning"
    dumped = store.dump("L")
    assert dumped is not None
    state = {
        (k.decode() if isinstance(k, bytes) else k): (x.decode() if isinstance(x, bytes) else x)
        for k, x in dumped[1].items()
    }
    assert state["n"] == "70" and state["f"] == "0"
    # 64 tallied types (values 1..64, one arrival each) and 64 buffered arrivals, not 70
    assert len(state["t"].split(";")) == 64 and state["t"].split(";")[-1] == "1,64,1"
    assert len(state["b"].split()) == 64
    v = f.check(1, 1)  # a known type is still tallied
    assert v.seen == 71
