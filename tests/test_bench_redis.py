"""``tk bench``'s Redis rows: every row of ours is measured next to its ceiling in the same run, with the
median ratio and its spread over rounds, and a progress line per group (a smoke run, not a measurement)."""

from __future__ import annotations

import pytest

from tests._support.env import REAL_REDIS, REDIS_URL


@pytest.mark.skipif(REAL_REDIS is None, reason="needs a real Redis")
def test_redis_rows_pair_each_path_with_its_ceiling() -> None:
    from throttlekit._bench import STRATEGIES
    from throttlekit._bench_redis import redis_rows

    lines: list[str] = []
    rows = redis_rows(REDIS_URL, n=200, rounds=1, progress=lines.append)
    assert len(lines) == len(STRATEGIES) + 2 and lines[0].startswith("[1/")
    groups = {r.group for r in rows}
    for name in STRATEGIES:
        assert f"redis {name}: check, one thread" in groups
        assert f"redis {name}: check_many(100)" in groups
    ours = [r for r in rows if r.baseline]
    assert ours and all(r.spread is not None and r.ratio is not None for r in ours)
    for r in ours:
        assert r.spread is not None and r.ratio is not None
        assert r.spread[0] <= r.ratio <= r.spread[1]
        ceiling = next(c for c in rows if c.group == r.group and c.name == r.baseline)
        assert ceiling.ratio is None and ceiling.per_sec > 0
    checks = [r for r in ours if r.group.endswith("check, one thread")]
    assert all(r.baseline.startswith("ceiling: raw socket") for r in checks)
