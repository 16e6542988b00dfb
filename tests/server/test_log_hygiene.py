"""Client keys never reach the server's log: a two-tier proactive refill that fails while the store is
down logs the policy's prefix and the error, not the key."""

from __future__ import annotations

import logging
import time

import pytest

from tests._support.redis_server import OwnRedis
from tests._support.server import Starter
from throttlekit.server import redis_store

pytestmark = pytest.mark.redis
SECRET = "user:alice@example.org\nforged line"


def test_a_failed_two_tier_refill_logs_no_key(
    start_server: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    own = OwnRedis()
    own.start()
    try:
        policy = {"strategy": "fixedWindow", "limit": 1000, "period": "1h"}
        served = start_server(
            {"tt": {**policy, "twoTier": {"mode": "leased", "batch": 4, "lowWater": 2}}},
            store=redis_store(own.url, "hyg"),
        )
        assert served.check("tt", SECRET).allowed  # lease of 4, 3 left locally
        own.stop()
        assert served.check("tt", SECRET).allowed  # 2 left: at low water, a refill starts and fails
        deadline = time.monotonic() + 20
        while not any("refill" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the refill never reported"
            time.sleep(0.02)
    finally:
        own.stop()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "two-tier proactive refill (prefix 'tt') failed: StoreError" in text, text
    assert "alice" not in text and "forged" not in text
