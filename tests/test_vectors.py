"""The core conformance test: every vector suite on every store in the table (one runner)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

import throttlekit as tk
from throttlekit._loader import load_manifest
from throttlekit.vectors import bundled_vector_files, load_suites, run_suite

SUITES = list(load_suites(bundled_vector_files()))


@pytest.mark.parametrize(("source", "suite"), SUITES, ids=[f"{src}:{s['name']}" for src, s in SUITES])
def test_suite(source: str, suite: dict[str, Any], store_factory: Any) -> None:
    result = run_suite(suite, store_factory, source)
    assert result.error is None, result.error
    assert result.ops > 0
    assert not result.mismatches, "\n".join(map(str, result.mismatches))


def test_bundled_files_are_the_golden_and_project_suites() -> None:
    names = sorted(p.name for p in bundled_vector_files())
    assert names == ["golden-vectors.json", "project-vectors.json"]
    golden = [s["name"] for src, s in SUITES if src == "golden-vectors.json"]
    assert len(golden) == 18  # every suite of ThrottleKit core 1.4.0's golden file


class Recording:
    """A store proxy that records which transforms ran (every call, bound or not)."""

    inline = True

    def __init__(self, inner: tk.MemoryStore, seen: Counter[str]) -> None:
        self.inner, self.seen, self.prefix = inner, seen, inner.prefix

    def bind(self, name: str, params: Any, *, guarded: bool = True) -> Any:
        call = self.inner.bind(name, params, guarded=guarded)

        def run(*args: Any) -> Any:
            self.seen[name] += 1
            return call(*args)

        return run

    def eval(self, name: str, *args: Any) -> Any:
        self.seen[name] += 1
        return self.inner.eval(name, *args)

    def eval_many(self, name: str, *args: Any) -> Any:
        self.seen[name] += 1
        return self.inner.eval_many(name, *args)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()


def test_every_transform_is_exercised_by_some_vector() -> None:
    """Manifest entries, Lua files and vectors stay 1:1: a transform no vector runs is a failure."""
    seen: Counter[str] = Counter()
    for source, suite in SUITES:
        assert run_suite(suite, lambda c: Recording(tk.MemoryStore(clock=c), seen), source).passed
    missing = sorted(set(load_manifest()) - set(seen))
    assert not missing, f"transforms without a vector: {missing}"


def test_reset_ops_forget_state() -> None:
    def decision(allowed: bool, remaining: int, reset_at: int, retry: int) -> dict[str, Any]:
        return {
            "allowed": allowed,
            "limit": 1,
            "remaining": remaining,
            "resetAt": reset_at,
            "retryAfterMs": retry,
        }

    suite = {
        "primitive": "rateLimit",
        "name": "reset",
        "strategy": {"kind": "fixedWindow", "options": {"limit": 1, "windowMs": 1000}},
        "ops": [
            {"now": 100, "cost": 1, "expect": decision(True, 0, 1000, 0)},
            {"now": 100, "cost": 1, "expect": decision(False, 0, 1000, 900)},
            {"op": "reset", "now": 100},
            {"now": 100, "cost": 1, "expect": decision(True, 0, 1000, 0)},
        ],
    }
    result = run_suite(suite, lambda c: tk.MemoryStore(clock=c))
    assert result.passed and result.ops == 3, result.mismatches
    unknown = {**suite, "ops": [{"op": "teleport", "now": 0}]}
    assert "unknown op 'teleport'" in str(run_suite(unknown, lambda c: tk.MemoryStore(clock=c)).error)
