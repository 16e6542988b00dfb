"""``throttlekit-server`` store flags (spec 3.1): inference, ``ambiguous store``, ``--store X requires``,
install hints for missing drivers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from throttlekit.cli.serve import _store, serve


def test_inference() -> None:
    assert _store(None, None) == "memory"
    assert _store(None, "redis://x") == "redis"
    assert _store(None, None, "postgresql://x") == "postgres"
    assert _store(None, None, None, "tbl") == "dynamodb"
    assert _store("postgres", "redis://x", "postgresql://x") == "postgres"  # explicit wins


def _run(tmp_path: Path, *args: str) -> tuple[int, str]:
    cfg = tmp_path / "p.yaml"
    cfg.write_text("version: 1\nlimiters:\n  a: { strategy: gcra, limit: 1, period: 1s }\n")
    res = CliRunner().invoke(serve, ["-c", str(cfg), "-p", "0", *args])
    return res.exit_code, res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--redis", "redis://x", "--postgres-url", "postgresql://x"],
         "ambiguous store: redis + postgres all implied; pass --store to choose one"),
        (["--redis", "redis://x", "--postgres-url", "postgresql://x", "--dynamodb-table", "t"],
         "ambiguous store: redis + postgres + dynamodb all implied; pass --store to choose one"),
        (["--store", "redis"], "--store redis requires --redis <url>"),
        (["--store", "postgres"], "--store postgres requires --postgres-url <url>"),
        (["--store", "dynamodb", "--postgres-url", "postgresql://x"], "--store dynamodb requires --dynamodb-table <name>"),
        (["--postgres-url", "postgresql://x", "--postgres-table", "bad-name"], "postgres table must match"),
    ],
)  # fmt: skip
def test_store_flag_errors(tmp_path: Path, args: list[str], message: str) -> None:
    code, out = _run(tmp_path, *args)
    assert code != 0
    assert message in out


@pytest.mark.parametrize(
    ("module", "args", "hint"),
    [
        ("psycopg", ["--postgres-url", "postgresql://x"], "pip install 'throttlekit-server[postgres]'"),
        ("boto3", ["--dynamodb-table", "t", "--dynamodb-region", "us-east-1"],
         "pip install 'throttlekit-server[dynamodb]'"),
    ],
)  # fmt: skip
def test_missing_driver_gives_an_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, args: list[str], hint: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if the extra were not installed
    code, out = _run(tmp_path, *args)
    assert code == 1
    assert hint in out
