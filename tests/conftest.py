"""Root fixtures. Test support code lives in ``tests/_support`` (one home: the environment, the store
table, the server launcher, throttlekit-py's venv, services); test modules import from there, never
from each other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import throttlekit as tk
from tests._support.env import redis_client
from tests._support.stores import STORES, StoreFactory, unique_prefix


@pytest.fixture(params=list(STORES.values()))
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    """Every store in the table (memory on each Lua runtime, real Redis, fakeredis)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> tk.ManualClock:
    return tk.ManualClock(1_000_000)


@pytest.fixture
def redis_store() -> Iterator[tk.RedisStore]:
    """A RedisStore on the real server (fakeredis off CI when absent) with a unique prefix."""
    store = tk.RedisStore(redis_client(), prefix=unique_prefix())
    yield store
    client = store.client
    for key in client.scan_iter(match=f"{store.prefix}:*", count=500):
        client.delete(key)
    store.close()
