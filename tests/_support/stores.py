"""The table of stores every behavioural test runs against: memory on each Lua runtime, real Redis
(fakeredis off CI), and fakeredis. Postgres and DynamoDB makers live in ``tests/stores/conftest.py``
(they need session services: a database table, a moto server)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

import throttlekit as tk
from throttlekit._lupa import RUNTIMES

from .env import fake_client, redis_client

StoreFactory = Callable[[tk.ManualClock], Any]


def unique_prefix(tag: str = "tkt") -> str:
    """A key prefix no other test (or concurrent run) uses."""
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def _memory(runtime: str) -> StoreFactory:
    return lambda clock: tk.MemoryStore(clock=clock, runtime=runtime)


def _redis_factory(clock: tk.ManualClock) -> Any:
    return tk.RedisStore(redis_client(), prefix=unique_prefix())


def _fakeredis_factory(clock: tk.ManualClock) -> Any:
    return tk.RedisStore(fake_client(), prefix="tkt")


#: One table of stores. Each entry: a pytest param of factory(clock) -> store, with its marks.
STORES: dict[str, Any] = {}
for _rt in sorted(RUNTIMES):
    STORES[f"memory-{_rt}"] = pytest.param(_memory(_rt), id=f"memory-{_rt}")
STORES["redis"] = pytest.param(_redis_factory, marks=pytest.mark.redis, id="redis")
STORES["fakeredis"] = pytest.param(_fakeredis_factory, marks=pytest.mark.fakeredis, id="fakeredis")
