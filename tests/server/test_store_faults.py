"""A store that answers "cannot serve now" is an outage, not a server error: our own redis-server kept busy
by a long script answers BUSY, and the server answers per --fail (never INTERNAL), logs the outage once
for the whole burst, and recovers when the script is killed."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from tests._support.redis_server import OwnRedis
from tests._support.server import Starter, pb
from throttlekit.server import redis_store

pytestmark = pytest.mark.redis
POLICIES = {"api": {"strategy": "fixedWindow", "limit": 5, "period": "1m"}}


def test_busy_redis_is_answered_per_fail_mode_and_logged_once(
    start_server: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="throttlekit.server")
    own = OwnRedis("--busy-reply-threshold", "50")
    own.start()
    blocker = own.client()
    try:
        served = start_server(POLICIES, store=redis_store(own.url, "busy"), fail="closed")
        assert served.check("api", "k").remaining == 4

        def long_script() -> None:
            try:
                blocker.eval("while true do end", 0)
            except redis.ResponseError:
                pass  # killed by SCRIPT KILL

        thread = threading.Thread(target=long_script, daemon=True)
        thread.start()
        probe = own.client()
        deadline = time.monotonic() + 10
        while True:  # wait (bounded) until Redis answers BUSY: the condition under test
            try:
                probe.ping()
            except redis.ResponseError as exc:
                assert "BUSY" in str(exc)
                break
            assert time.monotonic() < deadline, "redis never became busy"
            time.sleep(0.01)

        for _ in range(10):
            d = served.check("api", "k")
            assert (d.allowed, d.limit, d.remaining) == (False, 5, 0)  # fail closed, not INTERNAL
        many = served.stub.CheckMany(pb.CheckManyRequest(policy="api", keys=["a", "b"]), timeout=10)
        assert [d.allowed for d in many.decisions] == [False, False]

        probe.execute_command("SCRIPT", "KILL")
        thread.join(timeout=10)
        assert served.check("api", "k").remaining == 3
        probe.close()
    finally:
        blocker.close()
        own.stop()
    outages = [r.getMessage() for r in caplog.records if "store outage" in r.getMessage()]
    assert len(outages) == 1 and "BUSY" in outages[0], outages
    assert any(
        "store recovered" in r.getMessage() and "12 decisions" in r.getMessage() for r in caplog.records
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
