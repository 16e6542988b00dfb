"""Hostile and large policy files: disjoint key namespaces, control characters in names, alias bombs,
deep nesting, huge values in errors, and tens of thousands of policies (all loaded, linearly)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from throttlekit.cli import main
from throttlekit.config import PolicyConfigError, load_config


def _issues(text: str) -> list[str]:
    with pytest.raises(PolicyConfigError) as info:
        load_config(text, "p.yaml")
    return [str(i).removeprefix("p.yaml: ") for i in info.value.issues]


GCRA = "{strategy: gcra, limit: 10, period: 1s}"


def test_a_prefix_inside_another_policys_prefix_is_refused_naming_both() -> None:
    # Policy a's key "b:c" is store key "a:b:c", which is policy "a:b"'s key "c".
    (issue,) = _issues(f'limiters:\n  a: {GCRA}\n  "a:b": {GCRA}\n')
    assert issue.startswith(
        "limiters.a:b.prefix: store-key prefix 'a:b' lies inside prefix 'a' of policy 'a'"
    )
    assert "key 'b:k' of 'a' is key 'k' of this policy" in issue


def test_nesting_is_found_across_kinds_and_explicit_prefixes() -> None:
    issues = _issues(
        "limiters:\n"
        f"  api: {GCRA}\n"
        "  fleet: {fleetBudget: {budget: 5, windowMs: 1000, prefix: 'api:fleet'}}\n"
        "  leased: {strategy: fixedWindow, limit: 9, period: 1s, twoTier: {batch: 3}, prefix: 'api:x:y'}\n"
        "  local: {tokenBudget: {budget: 5, windowMs: 1000}}\n"  # no store keys: no namespace
    )
    assert [i.split(":", 1)[0] for i in issues] == ["limiters.fleet.prefix", "limiters.leased.prefix"]
    assert all("prefix 'api' of policy 'api'" in i for i in issues)


def test_prefixes_that_only_look_alike_are_fine() -> None:
    cfg = load_config(
        "limiters:\n"
        f"  a: {GCRA}\n"
        f'  "a!b": {GCRA}\n'  # sorts between "a" and "a:b": a neighbour-only scan would miss a:b below
        f"  ab: {GCRA}\n"
        f'  "b:": {GCRA}\n'
        f'  x: {{strategy: gcra, limit: 10, period: 1s, prefix: ":a"}}\n'
    )
    assert len(cfg.policies) == 5
    (issue,) = _issues(f'limiters:\n  a: {GCRA}\n  "a!b": {GCRA}\n  "a:b": {GCRA}\n')
    assert issue.startswith("limiters.a:b.prefix:")


def test_equal_prefixes_share_keys_only_with_one_state_layout() -> None:
    cfg = load_config(f"defaults: {{prefix: prod}}\nlimiters:\n  a: {GCRA}\n  b: {GCRA}\n")
    assert len(cfg.policies) == 2  # one counter served under two names, deliberately
    (issue,) = _issues(
        f"defaults: {{prefix: prod}}\nlimiters:\n  a: {GCRA}\n  b: {{strategy: gcra, limit: 11, period: 1s}}\n"
    )
    assert issue.startswith("limiters.b.prefix: store-key prefix 'prod' is also used by policy 'a'")


def test_an_empty_prefix_meets_every_other_policy() -> None:
    (issue,) = _issues(
        f'limiters:\n  raw: {{strategy: gcra, limit: 10, period: 1s, prefix: ""}}\n  b: {GCRA}\n'
    )
    assert issue.startswith("limiters.raw.prefix: an empty store-key prefix puts this policy's keys among")
    assert load_config('limiters:\n  raw: {strategy: gcra, limit: 10, period: 1s, prefix: ""}\n').policies


@pytest.mark.parametrize(
    ("name", "shown", "code"),
    [
        ("a\\nb", "'a\\nb'", "U+000A"),
        ("nul\\0", "'nul\\x00'", "U+0000"),
        ("tab\\there", "'tab\\there'", "U+0009"),
        ("del\\x7f", "'del\\x7f'", "U+007F"),
        ("next\\x85line", "'next\\x85line'", "U+0085"),
        ("csi\\x9b", "'csi\\x9b'", "U+009B"),
    ],
)
def test_policy_names_with_control_characters_are_refused_and_shown_escaped(
    name: str, shown: str, code: str
) -> None:
    (issue,) = _issues(f'limiters:\n  "{name}": {GCRA}\n  ok: {GCRA}\n')
    assert issue == (
        f"limiters.{shown}: policy name contains the control character {code} (got {shown}); "
        "allowed: 1 to 256 characters, no control characters"
    )
    assert "\n" not in issue and "\x00" not in issue


def test_names_the_upstream_refuses_are_refused() -> None:
    assert _issues(f"limiters:\n  __proto__: {GCRA}\n") == [
        "limiters.__proto__: is reserved (the upstream server refuses this key in any config file); "
        "allowed: any other name"
    ]


def test_unicode_names_without_controls_are_fine() -> None:
    assert list(load_config(f'limiters:\n  "café-ünïcødé 名前": {GCRA}\n').policies) == ["café-ünïcødé 名前"]


def _alias_bomb(levels: int = 12) -> str:
    lines = ["limiters:", '  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    lines.append(f"  api: {{strategy: gcra, limit: *l{levels - 1}, period: 1s}}")
    return "\n".join(lines) + "\n"  # 10**12 strings once expanded


def test_an_alias_bomb_fails_at_once_with_a_clear_error() -> None:
    (issue,) = _issues(_alias_bomb())
    assert (
        issue
        == "line 2: YAML parse error: aliases (*name) are not supported in policy files; write the value out"
    )


def test_aliases_and_merge_keys_are_refused_even_when_small() -> None:
    (issue,) = _issues("base: &b {limit: 10}\nlimiters:\n  a: {<<: *b, strategy: gcra, period: 1s}\n")
    assert "aliases (*name) are not supported" in issue


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    (issue,) = _issues("limiters:\n  a: " + "[" * depth + "]" * depth + "\n")
    assert "YAML parse error" in issue and ("nesting" in issue)
    (issue,) = _issues('{"limiters": {"a": ' + "[" * depth + "]" * depth + "}}")
    assert issue.startswith(("(top level): JSON parse error", "limiters.a: expected a mapping"))


def test_huge_values_are_quoted_up_to_a_bound() -> None:
    big = json.dumps(
        {"limiters": {"a": {"strategy": "gcra", "limit": list(range(200_000)), "period": "x" * 10**6}}}
    )
    issues = _issues(big)
    assert [i.split(":", 1)[0] for i in issues] == ["limiters.a.limit", "limiters.a.period"]
    assert all(len(i) < 400 for i in issues), [len(i) for i in issues]


def test_twenty_thousand_policies_load() -> None:
    shapes = [
        "{strategy: gcra, limit: 100, period: 1m}",
        "{strategy: slidingWindow, limit: 50, period: 10s, buckets: 20}",
        "{strategy: fixedWindow, limit: 9, period: 1m, twoTier: {batch: 3}}",
        "{fleetBudget: {budget: 100, windowMs: 60000}}",
    ]
    text = "limiters:\n" + "".join(f"  p{i}: {shapes[i % 4]}\n" for i in range(20_000))
    assert len(load_config(text).policies) == 20_000
    nested = text + "".join(f'  "p{i}:x": {shapes[0]}\n' for i in range(0, 20_000, 7))
    with pytest.raises(PolicyConfigError) as info:
        load_config(nested)
    assert len(info.value.issues) == len(range(0, 20_000, 7))


def test_tk_config_validate_lists_every_kind_of_error_at_once(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "limiters:\n"
        f"  a: {GCRA}\n"
        f'  "a:b": {GCRA}\n'
        f'  "bad\\nname": {GCRA}\n'
        "  far: {strategy: fixedWindow, limit: 1, period: 1e20}\n"
    )
    result = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"{path}: 3 errors"
    assert [ln.split(": ", 2)[1] for ln in lines[1:]] == [
        "limiters.'bad\\nname'",
        "limiters.far.period",
        "limiters.a:b.prefix",
    ]


def test_huge_keys_and_names_are_cut_in_paths() -> None:
    spec = {"strategy": "gcra", "limit": 1, "period": "1s"}
    issues = _issues(json.dumps({"limiters": {"a": {**spec, "x" * 100_000: 1}, "y" * 300: spec}}))
    assert issues[0].startswith("limiters.a.xxx") and issues[0].split(":")[0].endswith("\u2026")
    assert issues[1].startswith("limiters.'yyy") and "policy name is 300 characters long" in issues[1]
    assert all(len(i) < 600 for i in issues)
