"""Fleet: three server processes on one shared store (Redis, Postgres, DynamoDB on moto), hammered
concurrently by several client processes on the same keys. fixedWindow admits exactly ``limit`` per
window; gcra never admits more than ``burst + rate x elapsed``. The counts are printed (``pytest -s``).

Deterministic on a loaded machine, window boundary included: the snapshot stores read their clock after
the state (a decision's ``now`` is never older than the state it starts from, so a boundary splits the
calls into two exact windows instead of resetting the new one), a DynamoDB write whose answer was lost is
read back instead of being spent twice, and the moto service applies one request at a time as DynamoDB
does (see docs/stores.md). Every decision counts: one synthesized by the fail mode fails the test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._support.fleet import CLIENTS, FW_LIMIT, GC_BURST, GC_LIMIT, GC_PERIOD_MS, PER_CLIENT, Fleet
from tests._support.services import AWS_ENV, Moto


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("dynamodb", marks=pytest.mark.dynamodb),
    ]
)
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Fleet]]:
    import os

    env = dict(os.environ)
    prefix = f"tkfleet-{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        from tests._support.env import REAL_REDIS, REDIS_URL

        if REAL_REDIS is None:
            pytest.skip(f"the fleet needs a real Redis at {REDIS_URL}")
        args = ["--redis", REDIS_URL, "--redis-prefix", prefix]
    elif request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        args = ["--postgres-url", url, "--postgres-table", request.getfixturevalue("pg_table"),
                "--postgres-prefix", prefix]  # fmt: skip
    else:
        moto: Moto = request.getfixturevalue("moto")
        env.update(AWS_ENV)
        args = ["--dynamodb-table", request.getfixturevalue("ddb_table"), "--dynamodb-region", "us-east-1",
                "--dynamodb-endpoint", moto.endpoint, "--dynamodb-prefix", prefix]  # fmt: skip
    f = Fleet(tmp_path, args, env)
    yield request.param, f
    f.stop()


@pytest.mark.slow
def test_fleet_enforces_one_limit(fleet: tuple[str, Fleet]) -> None:
    name, f = fleet
    key = f"k-{uuid.uuid4().hex[:8]}"

    # fixedWindow: per window, admitted == min(limit, calls) exactly
    windows: dict[str, list[int]] = {}
    for r in f.hammer("fw", key):
        for w, (a, n) in r["windows"].items():
            windows.setdefault(w, [0, 0])
            windows[w][0] += a
            windows[w][1] += n
    synthesized = windows.pop("0", [0, 0])[1]
    print(f"\n[{name}] fixedWindow limit {FW_LIMIT}: per window (admitted, calls) "
          f"{ {w: tuple(v) for w, v in windows.items()} }, synthesized {synthesized}")  # fmt: skip
    assert synthesized == 0
    for a, n in windows.values():
        assert a == min(FW_LIMIT, n)
    assert sum(n for _, n in windows.values()) == CLIENTS * PER_CLIENT

    # gcra: admitted <= burst + rate x elapsed (elapsed measured around every call)
    res = f.hammer("gc", key)
    t0, t1 = min(r["t0"] for r in res), max(r["t1"] for r in res)
    admitted = sum(a for r in res for w, (a, _) in r["windows"].items() if w != "0")
    synthesized = sum(n for r in res for w, (_, n) in r["windows"].items() if w == "0")
    bound = GC_BURST + GC_LIMIT * (t1 - t0) / GC_PERIOD_MS
    print(f"[{name}] gcra {GC_LIMIT}/{GC_PERIOD_MS} ms burst {GC_BURST}: admitted {admitted} of "
          f"{CLIENTS * PER_CLIENT} in {t1 - t0:.0f} ms (bound {bound:.1f}), synthesized {synthesized}")  # fmt: skip
    assert synthesized == 0
    assert GC_BURST <= admitted <= bound


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("fail", ["open", "closed"])
def test_server_answers_per_fail_mode_through_a_postgres_outage(
    fail: str, pg_url: str, pg_table: str, tmp_path: Path
) -> None:
    """Postgres behind a proxy that dies mid-load: every Check still answers, per --fail, within the store
    timeouts; when the proxy returns, real decisions resume with the count intact."""
    import grpc

    from tests._support.services import Proxy
    from throttlekit._proto import throttlekit_pb2 as pb
    from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc

    proxy = Proxy(5432)
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    f = Fleet(tmp_path, ["--postgres-url", url, "--postgres-table", pg_table, "--postgres-prefix",
                         f"tkout-{uuid.uuid4().hex[:8]}"], dict(__import__("os").environ), servers=1, fail=fail)  # fmt: skip
    channel = grpc.insecure_channel(f"127.0.0.1:{f.ports[0]}")
    stub = pb_grpc.RateLimiterStub(channel)
    req = pb.CheckRequest(policy="fw", key="k", cost=1)
    try:
        for i in range(20):
            d = stub.Check(req, timeout=5).decision
            assert (d.allowed, d.remaining) == (True, FW_LIMIT - 1 - i)
        proxy.stop()
        t0 = time.monotonic()
        for _ in range(20):
            d = stub.Check(req, timeout=5).decision
            assert (d.allowed, d.reset_at) == (fail == "open", 0)  # synthesized by the fail mode
        per_call = (time.monotonic() - t0) / 20
        proxy.start()
        d = stub.Check(req, timeout=5).decision
        assert (d.allowed, d.remaining) == (True, FW_LIMIT - 21)
        print(f"\n[postgres outage, fail={fail}] 20 synthesized answers, {per_call * 1000:.1f} ms per call")
        assert per_call < 0.5
    finally:
        channel.close()
        f.stop()
        proxy.stop()
