"""Every store passes the conformance suite (one class per store, a few lines each)."""

from __future__ import annotations

from typing import Any

import pytest

from tests._support.contract import StoreContract


class TestMemory(StoreContract):
    shared_state = False

    @pytest.fixture
    def make_store(self, memory_store: Any) -> Any:
        return memory_store


@pytest.mark.redis
class TestRedis(StoreContract):
    manual_ttl = False
    has_async = False

    @pytest.fixture
    def make_store(self, redis_maker: Any) -> Any:
        return redis_maker


@pytest.mark.postgres
class TestPostgres(StoreContract):
    @pytest.fixture
    def make_store(self, pg_store: Any) -> Any:
        return pg_store


@pytest.mark.dynamodb
class TestDynamoDB(StoreContract):
    threads = 4
    per_thread = 30

    @pytest.fixture
    def make_store(self, ddb_store: Any) -> Any:
        return ddb_store
