"""What-If Replay: the candidate DSL and its refusals, shadows fed from the decision tap (manual clock),
the what-if result against a direct computation, truncation, poisoning, identity divergence, the
``replay:`` block's errors and ``throttlekit-server replay`` over a corpus."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import throttlekit as tk
from throttlekit.cli import main
from throttlekit.config import PolicyConfigError, load_config
from throttlekit.config._forensics import CandidateDelta
from throttlekit.forensics import Refusal, ReplayShadows, apply_candidate, attach_replay
from throttlekit.server import RateLimiterService

BASE = {"strategy": "gcra", "limit": 10, "period": "1s", "burst": 4}


def _delta(**ops: Any) -> CandidateDelta:
    return CandidateDelta("api", **ops)


def test_candidate_dsl_set_scale_swap() -> None:
    p, spec, comp = apply_candidate("api", BASE, _delta(set={"limit": 20}))
    assert spec["limit"] == 20 and comp == "comparable" and p.strategy == tk.Gcra(20, "1s", 4)
    _, spec, _ = apply_candidate(
        "api", {"strategy": "gcra", "limit": 10, "periodMs": 1000, "burst": 3}, _delta(scale={"burst": 1.5})
    )
    assert spec["burst"] == 4.5  # exact, no rounding
    p, spec, comp = apply_candidate(
        "api", {**BASE, "prefix": "pp"}, _delta(swap={"strategy": "fixedWindow", "limit": 5, "period": "1s"})
    )
    assert spec == {"prefix": "pp", "strategy": "fixedWindow", "limit": 5, "period": "1s"}
    assert comp == "cross-strategy" and p.prefix == "pp"


@pytest.mark.parametrize(
    ("base", "ops", "reason", "message"),
    [
        (BASE, {"set": {"limt": 3}}, "candidate-invalid", "set.limt: not a rate-policy field"),
        (
            BASE,
            {"set": {"limit": 3}, "scale": {"limit": 2}},
            "candidate-invalid",
            "limit is targeted by both set and scale",
        ),
        (BASE, {"scale": {"period": 2}}, "candidate-invalid", "scale.period: needs a finite numeric base"),
        (BASE, {"scale": {"limit": float("inf")}}, "candidate-invalid", "the factor must be a finite number"),
        (BASE, {"swap": {"limit": 3}}, "candidate-invalid", "swap needs `strategy`"),
        (BASE, {"set": {"windowMs": 500}}, "candidate-invalid", "windowMs is targeted while `period` is set"),
        (
            {"strategy": "gcra", "limit": 10, "periodMs": 1000},
            {"set": {"windowMs": 500}},
            "candidate-invalid",
            "gcra: windowMs is targeted while `periodMs` is set",
        ),
        (BASE, {"set": {"limit": -1}}, "unrebuildable-strategy", "limiters.api.limit"),
        (
            BASE,
            {"swap": {"strategy": "tokenBucket", "capacity": 5}},
            "unrebuildable-strategy",
            "refillPerSec",
        ),
    ],
)
def test_candidate_refusals(base: dict[str, Any], ops: dict[str, Any], reason: str, message: str) -> None:
    with pytest.raises(Refusal) as info:
        apply_candidate("api", base, _delta(**ops))
    assert info.value.reason == reason and message in info.value.message


def _config(**replay: Any) -> str:
    block = {"enabled": True, "candidate": {"policy": "api", "set": {"burst": 2}}}
    block.update(replay)
    return json.dumps(
        {
            "limiters": {
                "api": {"strategy": "gcra", "limit": 10, "period": "1s", "burst": 4},
                "other": {"strategy": "fixedWindow", "limit": 5, "period": "1s"},
                "meter": {"tokenBudget": {"budget": 10, "windowMs": 1000}},
            },
            "replay": block,
        }
    )


def _arrivals(n: int) -> list[tuple[str, int, int]]:
    return [(f"user-{i % 3}", 1 + i % 2, 20) for i in range(n)]


def _drive(
    text: str, arrivals: list[tuple[str, int, int]]
) -> tuple[ReplayShadows, list[tuple[str, int, int]]]:
    clock = tk.ManualClock(7_000_000)
    cfg = load_config(text)
    service = RateLimiterService(cfg, clock=clock)
    shadows = attach_replay(service, cfg)
    assert shadows is not None
    timeline = []

    async def go() -> None:
        for key, cost, gap in arrivals:
            timeline.append((key, cost, clock.now_ms()))
            await service.check("api", key, cost)
            clock.advance(gap)
        await service.peek("api", "user-0")
        await service.debit("meter", "user-0", 1)
        await service.check_many("other", ["a", "b"])
        await service.aclose()

    asyncio.run(go())
    return shadows, timeline


def _direct(strategy: tk.Strategy, timeline: list[tuple[str, int, int]]) -> list[bool]:
    clock = tk.ManualClock(0)
    with tk.Limiter(strategy, store=tk.MemoryStore(clock=clock), clock=clock) as lim:
        out = []
        for key, cost, at in timeline:
            clock.set(at)
            out.append(lim.check(key, cost).allowed)
    return out


def test_what_if_matches_a_direct_computation() -> None:
    shadows, timeline = _drive(_config(), _arrivals(90))
    out = shadows.run()
    status = {s["policy"]: s for s in out["shadows"]}
    assert status["api"] == {"policy": "api", "steps": 90, "observed": 90, "state": "recording"}
    assert status["other"]["steps"] == 2 and "meter" not in status
    result = out["whatIf"]
    base, new = _direct(tk.Gcra(10, "1s", 4), timeline), _direct(tk.Gcra(10, "1s", 2), timeline)
    a2d = sum(b and not n for b, n in zip(base, new))
    d2a = sum(n and not b for b, n in zip(base, new))
    assert a2d > 0
    assert (
        result["state"] == "ok"
        and result["candidateName"] == "configured"
        and result["candidate"] == "burst=2"
    )
    assert (result["flippedAllowToDeny"], result["flippedDenyToAllow"]) == (a2d, d2a)
    assert result["flippedTotal"] == a2d + d2a and result["steps"] == result["total"] == 90
    assert result["divergent"] >= result["flippedTotal"] and result["comparability"] == "comparable"
    shadows.close()


def test_max_steps_truncates_and_collision_poisons() -> None:
    shadows, _ = _drive(_config(maxSteps=10), _arrivals(25))
    result = shadows.run()["whatIf"]
    assert result["state"] == "truncated" and result["steps"] == 10 and result["total"] == 25
    shadows.close()
    shadows, _ = _drive(_config(redaction={"mode": "hmac", "secret": "x"}), _arrivals(3))
    shadow = shadows.shadows["api"]
    shadows.redact._owners[shadows.redact("user-9") or ""] = "someone-else"
    shadows.redact._refs.pop("user-9")
    shadows(type("E", (), {"op": "check", "policy": "api", "key": "user-9", "cost": 1, "at_ms": 1})())
    assert shadow.poisoned and shadows.run()["whatIf"]["state"] == "poisoned"
    shadows.close()


def test_empty_identity_divergence_and_not_shadowed() -> None:
    shadows, _ = _drive(_config(), [])
    result = shadows.run()["whatIf"]
    assert result["state"] == "empty" and result["refusal"]["reason"] == "trace-empty"
    shadows.close()
    shadows, _ = _drive(_config(), _arrivals(12))
    shadow = shadows.shadows["api"]
    first = shadow.decisions[0]
    shadow.decisions[0] = (1 - first[0], *first[1:])
    result = shadows.run()["whatIf"]
    assert result["state"] == "refused" and result["refusal"]["reason"] == "identity-divergence"
    shadows.close()
    shadows, _ = _drive(_config(policies="other"), _arrivals(3))
    assert set(shadows.shadows) == {"other"}
    assert shadows.run()["whatIf"]["refusal"]["reason"] == "not-shadowed"
    shadows.close()


def test_candidate_refusal_reaches_the_result() -> None:
    text = _config(candidate={"policy": "api", "scale": {"period": 2}})
    shadows, _ = _drive(text, _arrivals(5))
    result = shadows.run()["whatIf"]
    assert result["state"] == "refused" and result["refusal"]["reason"] == "candidate-invalid"
    shadows.close()


@pytest.mark.parametrize(
    ("replay", "message"),
    [
        (
            {"candidate": {"policy": "api"}},
            "replay.candidate: name at least one delta — `set`, `scale`, or `swap`",
        ),
        ({"candidate": {"set": {"limit": 1}}}, "replay.candidate.policy: required"),
        (
            {"candidate": {"policy": "meter", "set": {"limit": 1}}},
            "replay.candidate.policy: names no leaf rate policy",
        ),
        ({"policies": "api, nope"}, "replay.policies: names no leaf rate policy of this file"),
        ({"maxSteps": 0}, "replay.maxSteps: must be a positive integer"),
        ({"redaction": {"mode": "hmac"}}, "replay.redaction: hmac mode requires `secret` or `secretEnv`"),
        ({"enabled": "yes"}, "replay.enabled: must be true or false"),
        ({"bogus": 1}, "replay.bogus: unknown key"),
    ],
)
def test_replay_block_errors(replay: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyConfigError) as info:
        load_config(_config(**replay))
    assert any(message in str(i) for i in info.value.issues), info.value


def test_replay_command_over_a_corpus(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(_config())
    steps = [{"key": f"user-{i % 3}", "cost": 1, "at": 9_000_000 + i * 20} for i in range(60)]
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps({"api": {"steps": steps}}))
    res = CliRunner().invoke(main, ["replay", "--config", str(cfg), "--corpus", str(corpus)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    timeline = [(s["key"], 1, s["at"]) for s in steps]
    base, new = _direct(tk.Gcra(10, "1s", 4), timeline), _direct(tk.Gcra(10, "1s", 2), timeline)
    assert out["whatIf"]["flippedAllowToDeny"] == sum(b and not n for b, n in zip(base, new)) > 0
    res = CliRunner().invoke(main, ["replay", "--config", str(cfg)])
    assert res.exit_code == 1 and "error: pass exactly one corpus source" in res.stderr
    off = tmp_path / "off.json"
    off.write_text(json.dumps({"limiters": {"api": BASE}}))
    res = CliRunner().invoke(main, ["replay", "-c", str(off), "--corpus", str(corpus)])
    assert res.exit_code == 1 and "replay is not enabled in this config" in res.stderr


def test_snapshot_sections_are_additive_and_a_failing_one_is_left_out() -> None:
    from throttlekit.server._telemetry import TelemetryHub

    hub = TelemetryHub()

    def broken() -> Any:
        raise RuntimeError("boom")

    hub.sections.update(replay=lambda: {"shadows": []}, broken=broken)
    snap = hub.snapshot()
    assert snap["replay"] == {"shadows": []} and "broken" not in snap and "policies" in snap
    shadows, _ = _drive(_config(), _arrivals(4))
    assert shadows.snapshot() == {
        "shadows": [
            {"policy": "api", "steps": 4, "observed": 4, "state": "recording"},
            {"policy": "other", "steps": 2, "observed": 2, "state": "recording"},
        ],
        "candidate": {"policy": "api", "label": "burst=2"},
        "lastWhatIf": None,
    }
    assert shadows.snapshot()["lastWhatIf"] is None
    shadows.run()
    assert shadows.snapshot()["lastWhatIf"]["state"] == "ok"
    shadows.close()
