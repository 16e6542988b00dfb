"""``tk lua list`` and ``tk lua verify``: output, exit codes, and the first-mismatch report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from throttlekit._loader import load_manifest
from throttlekit.cli import main
from throttlekit.vectors import bundled_vector_files


def test_lua_list_shows_every_transform() -> None:
    res = CliRunner().invoke(main, ["lua", "list"])
    assert res.exit_code == 0
    for t in load_manifest().values():
        assert f"{t.name}" in res.output and t.sha in res.output
    data = json.loads(CliRunner().invoke(main, ["lua", "list", "--json"]).output)
    assert [d["name"] for d in data] == list(load_manifest())


def test_verify_passes_on_the_bundled_vectors() -> None:
    res = CliRunner().invoke(main, ["lua", "verify"])
    assert res.exit_code == 0, res.output
    assert "76/76 suites, 495 ops on store memory" in res.output
    assert "gcra/burst5-rate10ps" in res.output


def test_verify_runs_on_lua51_too() -> None:
    res = CliRunner().invoke(main, ["lua", "verify", "--runtime", "lua51", "--json"])
    report = json.loads(res.stdout)
    assert res.exit_code == 0 and report["passed"] and report["ops"] == 495


def test_verify_fails_with_the_first_mismatch(tmp_path: Path) -> None:
    doc = json.loads(bundled_vector_files()[0].read_text())
    doc["suites"][1]["ops"][3]["expect"]["retryAfterMs"] = 333
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    res = CliRunner().invoke(main, ["lua", "verify", "--vectors", str(bad)])
    assert res.exit_code == 1
    assert "first mismatch: gcra/fractional-T op #3: retryAfterMs expected 333, got 334" in res.output
    report = json.loads(CliRunner().invoke(main, ["lua", "verify", "--vectors", str(bad), "--json"]).stdout)
    assert report["passed"] is False


def test_verify_reports_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    res = CliRunner().invoke(main, ["lua", "verify", "--vectors", str(bad)])
    assert res.exit_code != 0
    assert "expected an object with a 'suites' list" in res.output


def test_verify_names_an_unreachable_redis() -> None:
    res = CliRunner().invoke(
        main, ["lua", "verify", "--store", "redis", "--redis-url", "redis://127.0.0.1:1/0"]
    )
    assert res.exit_code == 1
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in res.output


def test_bench_smoke_and_unreachable_redis() -> None:
    res = CliRunner().invoke(main, ["bench", "--quick", "--no-redis", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert any(r["name"] == "throttlekit gcra (luajit)" and r["ratio"] > 0 for r in rows)
    res = CliRunner().invoke(main, ["bench", "--quick", "--redis-url", "redis://127.0.0.1:1/0"])
    assert res.exit_code == 1 and "Redis at redis://127.0.0.1:1/0" in res.output


def test_bench_runs_its_ceiling_rows_without_the_limits_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """``limits`` (the bench extra) only adds the informative comparison: without it the ceiling rows run
    and the skipped group is said, instead of the whole command failing."""
    for name in [m for m in sys.modules if m == "limits" or m.startswith("limits.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "limits", None)  # import limits -> ImportError
    res = CliRunner().invoke(main, ["bench", "--quick", "--no-redis", "--json"])
    assert res.exit_code == 0, res.output
    assert "limits not installed: skipped" in res.stderr
    rows = json.loads(res.stdout)
    assert not any("limits" in r["name"] for r in rows)
    assert any(r["baseline"].startswith("pure-Python GCRA") and r["ratio"] > 0 for r in rows), rows
