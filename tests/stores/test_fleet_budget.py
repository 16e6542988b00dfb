"""Fleet, cost axis: three server processes on one Redis, debited concurrently by several client
processes, meter exactly one ``fleetBudget``; a leased window-coupled ``twoTier`` policy served by the
same three processes admits at most its limit per window. Reuses the fleet test's processes
(``tests/_support/fleet_server.py``, ``fleet_client.py``); counts are printed (``pytest -s``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._support.fleet import CLIENTS, PER_CLIENT, Fleet

pytestmark = [pytest.mark.redis, pytest.mark.slow]

BUDGET, LIMIT, BATCH = 200, 150, 10  # both below CLIENTS x PER_CLIENT (360): every window saturates
CONFIG = f"""version: 1
limiters:
  tokens: {{ fleetBudget: {{ budget: {BUDGET}, windowMs: 600000, prefix: llm }} }}
  leased:
    strategy: fixedWindow
    limit: {LIMIT}
    period: 10m
    twoTier: {{ mode: leased, batch: {BATCH}, windowCoupled: true }}
"""


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    from tests._support.env import REAL_REDIS, REDIS_URL

    if REAL_REDIS is None:
        pytest.skip(f"the fleet needs a real Redis at {REDIS_URL}")
    prefix = f"tkfb-{uuid.uuid4().hex[:8]}"
    f = Fleet(tmp_path, ["--redis", REDIS_URL, "--redis-prefix", prefix], dict(os.environ), config=CONFIG)
    yield f
    f.stop()


def _windows(results: list[dict[str, object]]) -> dict[str, list[int]]:
    windows: dict[str, list[int]] = {}
    for r in results:
        for w, (a, n) in r["windows"].items():  # type: ignore[attr-defined]
            windows.setdefault(w, [0, 0])
            windows[w][0] += a
            windows[w][1] += n
    return windows


def test_three_servers_meter_one_budget(fleet: Fleet) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"
    windows = _windows(fleet.hammer("tokens", key, "debit"))
    synthesized = windows.pop("0", [0, 0])[1]
    print(
        f"\n[fleetBudget {BUDGET}] per window (admitted, debits) { {w: tuple(v) for w, v in windows.items()} }"
    )
    assert synthesized == 0
    assert sum(n for _, n in windows.values()) == CLIENTS * PER_CLIENT
    for a, n in windows.values():
        assert a == min(BUDGET, n)  # per-token debits: the budget exactly, never one more


def test_three_servers_leased_window_coupled_stay_within_the_limit(fleet: Fleet) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"
    windows = _windows(fleet.hammer("leased", key))
    print(f"\n[twoTier leased batch {BATCH}, limit {LIMIT}, 3 servers] per reset_at (admitted, calls) "
          f"{ {w: tuple(v) for w, v in windows.items()} }")  # fmt: skip
    assert "0" not in windows
    admitted = sum(a for a, _ in windows.values())
    assert LIMIT - 3 * BATCH <= admitted <= LIMIT * len({int(w) // 600_000 for w in windows})
