"""The policy-file loader: one fixture per error (exact messages), every error of a file at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import throttlekit as tk
from throttlekit.cli import main
from throttlekit.config import PolicyConfigError, RatePolicy, load_config, load_config_file

HERE = Path(__file__).resolve().parent / "config"
BAD = sorted(HERE.glob("bad_*.yaml"))


def _expected(path: Path) -> list[str]:
    lines = [ln[len("# expect: ") :] for ln in path.read_text().splitlines() if ln.startswith("# expect: ")]
    return [f"{path}: {ln}" for ln in lines]


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_each_bad_file_reports_exactly_its_errors(path: Path) -> None:
    with pytest.raises(PolicyConfigError) as info:
        load_config_file(path)
    assert [str(i) for i in info.value.issues] == _expected(path)
    assert isinstance(info.value, tk.ConfigError)


def test_issues_name_file_policy_field_value_and_allowed() -> None:
    with pytest.raises(PolicyConfigError) as info:
        load_config_file(HERE / "bad_negative_limit.yaml")
    (issue,) = info.value.issues
    assert issue.source.endswith("bad_negative_limit.yaml")
    assert (issue.policy, issue.path, issue.value) == ("api", "limiters.api.limit", -5)
    assert "> 0" in issue.allowed


def _same(policy: object, strategy: tk.Strategy) -> bool:
    got = policy.strategy  # type: ignore[attr-defined]
    return type(got) is type(strategy) and got.params == strategy.params


def test_good_file_builds_every_strategy() -> None:
    cfg = load_config_file(HERE / "good.yaml")
    p = cfg.policies
    assert list(p) == ["api", "uploads", "hourly", "search", "login", "monthly", "billing", "legacy"]
    assert all(isinstance(x, RatePolicy) for x in p.values())
    assert _same(p["api"], tk.Gcra(100, 60_000, burst=20))
    assert p["api"].prefix == "prod"  # type: ignore[attr-defined]
    assert _same(p["uploads"], tk.TokenBucket(50, 0.5))
    assert _same(p["hourly"], tk.FixedWindow(1000, 3_600_000))
    assert _same(p["search"], tk.SlidingWindow(1000, "5m", buckets=30))
    assert _same(p["login"], tk.SlidingWindowLog(10, "10s"))
    assert _same(p["monthly"], tk.Quota(1_000_000, "calendar-month", offset_minutes=-300))
    assert _same(p["billing"], tk.Quota(500, "fixed", 86_400_000, anchor=3_600_000))
    assert _same(p["legacy"], tk.Gcra(10, 1000))


def test_json_is_accepted_and_strict_too() -> None:
    cfg = load_config(json.dumps({"limiters": {"api": {"strategy": "gcra", "limit": 5, "period": "1s"}}}))
    assert cfg.policies["api"].prefix == "api"  # type: ignore[attr-defined]
    with pytest.raises(PolicyConfigError) as info:
        load_config(
            '{"limiters": {"a": {"strategy": "gcra", "limit": 5, "period": "1s"}}, "a": 1, "a": 2}', "x.json"
        )
    assert str(info.value.issues[0]) == "x.json: (top level): JSON parse error: duplicate key 'a'"
    with pytest.raises(PolicyConfigError, match="expected a mapping with a `limiters` map"):
        load_config("[1, 2]")
    with pytest.raises(PolicyConfigError, match="empty document"):
        load_config("")


def test_example_config_is_valid() -> None:
    cfg = load_config_file(Path(__file__).resolve().parents[2] / "examples" / "policies.yaml")
    assert len(cfg.policies) == 11


def test_cli_validate_prints_errors_and_exits_1() -> None:
    res = CliRunner().invoke(main, ["config", "validate", str(HERE / "bad_many_errors.yaml")])
    assert res.exit_code == 1
    assert "bad_many_errors.yaml: 5 errors" in res.output
    for line in _expected(HERE / "bad_many_errors.yaml"):
        assert line in res.output


def test_cli_validate_summarises_each_policy() -> None:
    res = CliRunner().invoke(main, ["config", "validate", str(HERE / "good.yaml")])
    assert res.exit_code == 0, res.output
    assert "good.yaml: ok, 8 policies" in res.output
    assert "  api: gcra 100 per 60000 ms, burst 20 (prefix 'prod')" in res.output
    res = CliRunner().invoke(main, ["config", "validate", str(HERE / "missing.yaml")])
    assert res.exit_code == 1 and "cannot read policy file" in res.output


def test_a_kind_block_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections.abc import Mapping
    from dataclasses import dataclass
    from typing import Any, ClassVar

    from throttlekit.config import Policy, kinds

    @dataclass(frozen=True)
    class Meter(Policy):
        name: str
        budget: int
        kind: ClassVar[str] = "meter"

        def describe(self) -> str:
            return f"meter {self.budget}"

    class MeterKind:
        name = "meter"
        block: str | None = "meterBlock"
        keys = frozenset({"prefix"})

        def accepted_keys(self, spec: Mapping[str, Any]) -> frozenset[str]:
            return self.keys

        def build(self, ctx: kinds.PolicyContext, spec: Mapping[str, Any]) -> Policy | None:
            budget = spec["meterBlock"].get("budget")
            if not isinstance(budget, int):
                ctx.error("meterBlock.budget", "required", allowed="an integer")
                return None
            return Meter(ctx.name, budget)

    monkeypatch.setattr(kinds, "KINDS", (*kinds.KINDS, MeterKind()))
    cfg = load_config(
        "limiters:\n  m: { meterBlock: { budget: 5 } }\n  r: { strategy: gcra, limit: 1, period: 1s }\n"
    )
    assert cfg.describe() == ["m: meter 5", "r: gcra 1 per 1000 ms, burst 1 (prefix 'r')"]
    with pytest.raises(PolicyConfigError) as info:
        load_config("limiters:\n  m: { meterBlock: {}, limit: 3 }\n", "k.yaml")
    assert [str(i) for i in info.value.issues] == [
        "k.yaml: limiters.m.limit: unknown key in policy 'm'; allowed: meterBlock, prefix",
        "k.yaml: limiters.m.meterBlock.budget: required; allowed: an integer",
    ]
