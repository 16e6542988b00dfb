"""The golden vectors on every shared store, through the Python runner and through ``tk lua verify``."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from tests._support.services import Moto
from throttlekit.cli import main
from throttlekit.vectors import bundled_vector_files, load_suites, run_suite

SUITES = list(load_suites(bundled_vector_files()))
IDS = [f"{src}:{s.get('name', '?')}" for src, s in SUITES]


@pytest.mark.postgres
@pytest.mark.parametrize(("src", "suite"), SUITES, ids=IDS)
def test_vectors_postgres(src: str, suite: dict[str, Any], pg_store: Any) -> None:
    r = run_suite(suite, pg_store, src)
    assert r.passed, r.mismatches[:1] or r.error


@pytest.mark.dynamodb
@pytest.mark.parametrize(("src", "suite"), SUITES, ids=IDS)
def test_vectors_dynamodb(src: str, suite: dict[str, Any], ddb_store: Any) -> None:
    r = run_suite(suite, ddb_store, src)
    assert r.passed, r.mismatches[:1] or r.error


@pytest.mark.postgres
def test_tk_lua_verify_postgres(pg_url: str, pg_table: str) -> None:
    args = ["lua", "verify", "--store", "postgres", "--postgres-url", pg_url, "--postgres-table", pg_table]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert f"{len(SUITES)}/{len(SUITES)} suites" in res.output


@pytest.mark.dynamodb
def test_tk_lua_verify_dynamodb(moto: Moto) -> None:
    args = ["lua", "verify", "--store", "dynamodb", "--dynamodb-table", "tkt-verify",
            "--dynamodb-region", "us-east-1", "--dynamodb-endpoint", moto.endpoint]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert f"{len(SUITES)}/{len(SUITES)} suites" in res.output


def test_tk_lua_verify_unreachable_postgres_is_a_clear_error() -> None:
    res = CliRunner().invoke(main, ["lua", "verify", "--store", "postgres", "--postgres-url",
                                    "postgresql://postgres@127.0.0.1:1/x"])  # fmt: skip
    assert res.exit_code == 1
    assert "cannot reach Postgres" in res.output
