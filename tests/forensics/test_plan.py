"""``policy plan``: classification, the cold-record/replay diff checked against a direct computation,
the renders, gates and every usage error (exit codes 0 and 1 only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import throttlekit as tk
from throttlekit.cli import main
from throttlekit.forensics import Trace, classify, make_plan, parse_corpus

CURRENT = """
defaults: { prefix: prod }
limiters:
  api: { strategy: fixedWindow, limit: 4, period: 1s }
  search: { strategy: gcra, limit: 10, period: 1s, burst: 3 }
  meter:
    tokenBudget: { budget: 10, windowMs: 1000 }
  idle: { strategy: tokenBucket, capacity: 5, refillPerSec: 1 }
"""
CANDIDATE = """
defaults: { prefix: prod }
limiters:
  api: { strategy: fixedWindow, limit: 2, period: 1s }
  search: { strategy: gcra, limit: 10, period: 1s, burst: 6 }
  meter:
    tokenBudget: { budget: 10, windowMs: 1000 }
  idle: { strategy: tokenBucket, capacity: 5, refillPerSec: 1 }
  fresh: { strategy: gcra, limit: 1, period: 1s }
"""


def _steps(n: int, keys: int, start: int = 5_000_000, gap: int = 40) -> list[dict[str, Any]]:
    return [{"key": f"tenant-{i % keys}", "cost": 1 + i % 2, "at": start + i * gap} for i in range(n)]


def _direct(strategy: tk.Strategy, steps: list[dict[str, Any]]) -> list[bool]:
    """The decisions computed here, by the library limiter on a manual clock (not the plan's engine)."""
    clock = tk.ManualClock(0)
    with tk.Limiter(strategy, store=tk.MemoryStore(clock=clock), clock=clock) as lim:
        out = []
        for s in steps:
            clock.set(s["at"])
            out.append(lim.check(s["key"], s["cost"]).allowed)
    return out


def _write(tmp: Path, **files: Any) -> dict[str, str]:
    out = {}
    for name, text in files.items():
        p = tmp / name
        p.write_text(text if isinstance(text, str) else json.dumps(text))
        out[name] = str(p)
    return out


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_plan_flips_match_a_direct_computation(tmp_path: Path) -> None:
    api, search = _steps(300, 7), _steps(120, 3, gap=20)
    f = _write(
        tmp_path, cur=CURRENT, cand=CANDIDATE, corpus={"api": {"steps": api}, "search": [{"steps": search}]}
    )
    res = _run("policy", "plan", "-c", f["cur"], "--candidate", f["cand"], "--corpus", f["corpus"], "--json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    rows = {d["policy"]: d for d in plan["diffs"]}
    for name, steps, cur, cand in (
        ("api", api, tk.FixedWindow(4, "1s"), tk.FixedWindow(2, "1s")),
        ("search", search, tk.Gcra(10, "1s", 3), tk.Gcra(10, "1s", 6)),
    ):
        base, new = _direct(cur, steps), _direct(cand, steps)
        a2d = sum(b and not c for b, c in zip(base, new))
        d2a = sum(c and not b for b, c in zip(base, new))
        keys = {s["key"] for s, b, c in zip(steps, base, new) if b != c}
        row = rows[name]
        assert (row["allowToDeny"], row["denyToAllow"], row["affectedKeys"]) == (a2d, d2a, len(keys))
        assert row["steps"] == len(steps) and row["state"] == "ok"
    assert rows["api"]["allowToDeny"] > 0 and rows["api"]["denyToAllow"] == 0
    assert rows["search"]["denyToAllow"] > rows["search"]["allowToDeny"]  # a larger burst admits more
    assert rows["idle"]["state"] == "empty"
    assert rows["meter"]["refusal"]["reason"] == "not-replayable"
    assert "tokenBudget" in rows["meter"]["refusal"]["message"]
    assert plan["summary"]["added"] == ["fresh"] and plan["summary"]["removed"] == []
    assert plan["summary"]["allowToDeny"] == rows["api"]["allowToDeny"] + rows["search"]["allowToDeny"]
    assert plan["summary"]["replayable"] == 2 and plan["summary"]["policies"] == 4
    assert plan["corpus"] == {"policies": 2, "steps": 420, "truncated": False}
    top = rows["api"]["topFlippedKeys"]
    assert len(top) == 7 and [t["total"] for t in top] == sorted((t["total"] for t in top), reverse=True)


def test_text_render_and_gates(tmp_path: Path) -> None:
    f = _write(
        tmp_path,
        cur=CURRENT,
        cand=CANDIDATE,
        corpus={"api": {"steps": _steps(100, 5), "truncated": True}},
    )
    base = ["policy", "plan", "-c", f["cur"], "--candidate", f["cand"], "--corpus", f["corpus"]]
    res = _run(*base, "--top", "2")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("Policy Plan: current ") and " → candidate " in lines[0]
    assert lines[1] == "corpus: 100 arrival(s) across 1 policy(ies) — TRUNCATED (diff covers a prefix)"
    api = next(line for line in lines if line.startswith("  api: "))
    assert " [prefix]  top: tenant-" in api and api.split("top: ")[1].count("(") == 2
    assert "  idle: no recorded traffic (nothing to diff)" in lines
    assert any(line.startswith("  meter: not replayable — cost meter") for line in lines)
    assert "+ added: fresh" in lines and lines[-1].startswith("Summary: ")
    assert lines[-1].endswith("; 1/4 policies replayable.")  # empty rows are not counted
    plan = json.loads(_run(*base, "--json").stdout)
    a2d = plan["summary"]["allowToDeny"]
    assert len(plan["diffs"][0]["topFlippedKeys"]) == 5  # the plan's own default is 10 keys

    res = _run(
        *base, "--max-allow-deny", str(a2d - 1), "--max-flips", "0", "--max-keys", "0", "--require-replayable"
    )
    assert res.exit_code == 1 and res.stdout.startswith("Policy Plan:")
    assert res.stderr.splitlines() == [
        f"rejected: allow→deny {a2d} exceeds max {a2d - 1}",
        f"rejected: total flips {a2d} exceeds max 0",
        f"rejected: affected keys {plan['summary']['affectedKeys']} exceeds max 0",
        "rejected: 1 policy(ies) not replayable: meter (cost meter (tokenBudget) — a debit is metered per "
        "process, not a check a replay reproduces)",
    ]
    assert _run(*base, "--max-allow-deny", str(a2d), "--max-deny-allow", "0").exit_code == 0


def test_content_hash_is_content_addressed() -> None:
    a = classify(
        {
            "limiters": {
                "x": {"strategy": "gcra", "limit": 5, "period": "1s"},
                "y": {"strategy": "gcra", "limit": 1.0, "period": 1000},
            }
        },
        "a",
    )
    b = classify(
        {
            "limiters": {
                "y": {"period": 1000, "limit": 1, "strategy": "gcra"},
                "x": {"period": "1s", "strategy": "gcra", "limit": 5},
            }
        },
        "b",
    )
    c = classify(
        {
            "limiters": {
                "x": {"strategy": "gcra", "limit": 6, "period": "1s"},
                "y": {"strategy": "gcra", "limit": 1, "period": 1000},
            }
        },
        "c",
    )
    assert a.content_hash == b.content_hash != c.content_hash
    assert a.leaves["x"].spec["prefix"] == "x"


def test_unreplayable_classification_reasons() -> None:
    s = classify(
        {
            "limiters": {
                "c": {"concurrency": {"maxLimit": 4}, "strategy": "gcra"},
                "f": {"federated": {"batch": 1}, "strategy": "fixedWindow", "limit": 1, "period": "1s"},
                "t": {"twoTier": {}, "strategy": "gcra", "limit": 1, "period": "1s"},
                "n": {"limit": 3},
                "bad": {"strategy": "gcra", "limit": -1, "period": "1s"},
                "typo": {"strategy": "gcra", "limt": 1, "period": "1s"},
            }
        },
        "x",
    )
    assert not s.leaves
    r = s.unreplayable
    assert r["c"].startswith("concurrency axis — a release is not a decision")
    assert r["f"].startswith("federated budget")
    assert r["t"].startswith("two-tier")
    assert r["n"] == "no leaf-rate strategy declared (not a check-replayable policy)"
    assert "limiters.bad.limit" in r["bad"]
    assert "limiters.typo.limt: unknown key" in r["typo"]


def test_current_unreplayable_policy_that_became_a_leaf_is_refused() -> None:
    cur = classify(
        {"limiters": {"p": {"twoTier": {}, "strategy": "gcra", "limit": 1, "period": "1s"}}}, "current"
    )
    cand = classify({"limiters": {"p": {"strategy": "gcra", "limit": 1, "period": "1s"}}}, "candidate")
    plan = make_plan(cur, cand, {"p": [Trace([("k", 1, 10)])]})
    (row,) = plan["diffs"]
    assert row["state"] == "refused" and row["refusal"]["reason"] == "not-replayable"
    assert plan["summary"]["replayable"] == 0


def test_merged_segments_replay_in_time_order() -> None:
    cur = classify({"limiters": {"p": {"strategy": "fixedWindow", "limit": 1, "period": "1s"}}}, "current")
    cand = classify({"limiters": {"p": {"strategy": "fixedWindow", "limit": 2, "period": "1s"}}}, "candidate")
    late, early = Trace([("k", 1, 2500), ("k", 1, 2600)]), Trace([("k", 1, 1000), ("k", 1, 1100)])
    plan = make_plan(cur, cand, {"p": [late, early]})
    # time order: 1000 (allowed both), 1100 (deny -> allow), 2500 (next window, allowed), 2600 (deny -> allow)
    assert plan["diffs"][0]["denyToAllow"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "usage: throttlekit-server policy plan"),
        (["apply"], 'error: unknown policy action "apply" (only `plan`)'),
        (["plan", "extra"], "error: unknown policy argument: extra"),
        (["plan"], "error: --config (the current, running config) is required"),
        (["plan", "-c", "{cur}"], "error: --candidate is required"),
        (
            ["plan", "-c", "{cur}", "--candidate", "{cur}"],
            "error: a corpus source is required — pass --corpus",
        ),
        (
            ["plan", "-c", "{cur}", "--candidate", "{cur}", "--corpus", "{corpus}", "--from-capture"],
            "error: pass only one corpus source (--corpus OR --from-capture)",
        ),
        (
            ["plan", "-c", "{cur}", "--candidate", "{cur}", "--corpus", "{corpus}", "--max-flips", "-1"],
            "error: --max-flips must be a non-negative integer, got -1",
        ),
        (["plan", "--nope", "1"], "error: unknown argument: --nope"),
        (
            ["plan", "-c", "{cur}", "--candidate", "{cur}", "--corpus", "{bad}"],
            'error: policy plan: corpus["api"] is not a trace',
        ),
        (
            ["plan", "-c", "{cur}", "--candidate", "{cur}", "--corpus", "{badstep}"],
            'error: policy plan: corpus["api"][0].steps[1].cost must be a positive number (got -2',
        ),
        (
            ["plan", "-c", "{cur}", "--candidate", "{missing}", "--corpus", "{corpus}"],
            "error: cannot read candidate config",
        ),
        (
            ["plan", "-c", "{notmap}", "--candidate", "{cur}", "--corpus", "{corpus}"],
            "config: missing `limiters` map",
        ),
    ],
)
def test_usage_errors_exit_1(tmp_path: Path, args: list[str], message: str) -> None:
    f = _write(
        tmp_path,
        cur=CURRENT,
        corpus={},
        bad={"api": {"stops": []}},
        badstep={"api": [{"steps": [{"key": "a", "at": 1}, {"key": "b", "cost": -2, "at": 2}]}]},
        notmap="limiters: 3\n",
    )
    f["missing"] = str(tmp_path / "nope.yaml")
    res = _run("policy", *[a.format(**f) for a in args])
    assert res.exit_code == 1, res.output
    assert message in res.stderr and res.stdout == ""


def test_corpus_parsing_rejects_bad_values() -> None:
    with pytest.raises(tk.ConfigError, match=r"corpus is not an object"):
        parse_corpus([])
    with pytest.raises(tk.ConfigError, match=r"\.at must be an epoch-ms integer"):
        parse_corpus({"p": {"steps": [{"key": "k", "at": -1}]}})
    with pytest.raises(tk.ConfigError, match=r"\.key must be a string"):
        parse_corpus({"p": {"steps": [{"key": 3, "at": 1}]}})
    assert parse_corpus({"p": {"steps": [{"key": "k", "at": 1, "decision": {"allowed": True}}]}})["p"][
        0
    ].steps == [("k", 1, 1)]
