"""Operators see evictions: a bounded store that evicts live keys at ``max_keys`` is reported once per
report interval (count, bound, what to do), and ``--memory-max-keys`` sets the memory store's bound."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

import throttlekit as tk
from tests._support.server import EXAMPLE
from throttlekit.cli.serve import serve
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService
from throttlekit.server._service import EvictionLog
from throttlekit.stores import store_from_flags


def test_evictions_are_reported_once_with_the_count_and_the_bound(caplog: pytest.LogCaptureFixture) -> None:
    store = tk.MemoryStore(clock=tk.ManualClock(0), max_keys=2)
    limiter = tk.Limiter(tk.FixedWindow(5, "1h"), store=store)
    report = EvictionLog([("memory store", store)])
    limiter.check("a")
    assert report.report() == 0
    for k in "bcde":
        limiter.check(k)
    with caplog.at_level(logging.WARNING, logger="throttlekit.server"):
        assert report.report() == 3
        assert report.report() == 0  # nothing new: nothing logged
    (line,) = [r.getMessage() for r in caplog.records]
    assert "memory store: 3 live keys evicted at max_keys=2" in line
    assert "--memory-max-keys" in line


def test_the_service_lists_every_bounded_store() -> None:
    config = load_config(
        """
limiters:
  plain: { strategy: gcra, limit: 10, period: 1s }
  tiered: { strategy: fixedWindow, limit: 100, period: 1m, twoTier: { mode: leased, batch: 10 } }
  tokens: { tokenBudget: { budget: 1000, windowMs: 60000, maxKeys: 50 } }
"""
    )
    service = RateLimiterService(config, store=tk.MemoryStore(max_keys=7))
    names = [name for name, _ in service.bounded_stores()]
    assert names == [
        "memory store",
        "policy 'tiered' in-process tier (L1)",
        "policy 'tiered' private L2",
        "policy 'tokens' meter store",
    ]
    bounds = [s.stats()["max_keys"] for _, s in service.bounded_stores()]
    assert bounds[0] == 7 and bounds[-1] == 50


def test_memory_max_keys_sets_the_bound() -> None:
    store = store_from_flags("memory", memory_max_keys=3)
    assert isinstance(store, tk.MemoryStore)
    assert store.stats()["max_keys"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-max-keys", "0"], "0 is not in the range"),
        (["--memory-max-keys", "5", "--redis", "redis://127.0.0.1:6379/0"], "applies to the memory store"),
    ],
)
def test_memory_max_keys_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(serve, ["--config", str(EXAMPLE), *args])
    assert result.exit_code == 2
    assert message in result.output
