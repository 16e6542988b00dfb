"""The GitHub Actions example (docs/examples/policy-plan.yml) runs as written: its shell steps are taken
from the file and run with bash in a git repository shaped like a pull request checkout, so the example
cannot drift from the CLI. A change within budget passes; one that halves a limit fails the step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests._support.env import ROOT

WORKFLOW = ROOT / "docs" / "examples" / "policy-plan.yml"
CURRENT = "limiters:\n  api: { strategy: fixedWindow, limit: 8, period: 1s }\n"


def _steps() -> dict[str, str]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    return {s["name"]: s["run"] for s in doc["jobs"]["plan"]["steps"] if "run" in s and "name" in s}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=30)


def _run_pr(tmp: Path, candidate: str) -> subprocess.CompletedProcess[str]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    env_vars = doc["env"]
    repo = tmp / "repo"
    (repo / "deploy").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / env_vars["POLICY_FILE"]).write_text(CURRENT)
    steps = [{"key": f"k{i % 4}", "cost": 1, "at": 1_000_000 + i * 30} for i in range(120)]
    (repo / env_vars["CORPUS"]).write_text(json.dumps({"api": [{"steps": steps}]}))
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    _git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    (repo / env_vars["POLICY_FILE"]).write_text(candidate)
    run = _steps()
    script = "\n".join(
        [
            "set -e",
            run["Current policy file (the pull request's base)"],
            run["The candidate loads in the server"],
            run["Policy plan (fails the job on a gate breach)"],
        ]
    )
    runner_temp = tmp / "runner"
    runner_temp.mkdir()
    env = {
        **os.environ,
        **{k: str(v) for k, v in env_vars.items()},
        "GITHUB_BASE_REF": "main",
        "RUNNER_TEMP": str(runner_temp),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        ["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )


def test_workflow_triggers_on_the_policy_file() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert doc["env"]["POLICY_FILE"] in on["pull_request"]["paths"]


def test_a_change_within_budget_passes(tmp_path: Path) -> None:
    res = _run_pr(tmp_path, CURRENT.replace("limit: 8", "limit: 9"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Policy Plan: current" in res.stdout and "0 newly DENIED" in res.stdout


def test_halving_a_limit_fails_the_pull_request(tmp_path: Path) -> None:
    res = _run_pr(tmp_path, CURRENT.replace("limit: 8", "limit: 4"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Policy Plan: current" in res.stdout  # the plan is still printed (and tee'd)
    assert "rejected: allow→deny" in res.stderr and "exceeds max 50" in res.stderr
