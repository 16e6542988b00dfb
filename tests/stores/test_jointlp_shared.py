"""The joint-LP adaptive learner served over gRPC on the snapshot stores (Postgres: advisory lock;
DynamoDB: version compare-and-set, moto): the server prices through ``aeval`` on the shared store, and
a second server on the same table reads the learner the first one froze. Worked by hand as the vector
jointLp/adaptive-adopts-learned: the prior duals (10, 0) deny four value-3 admits, then the learned
duals (3, 0) are adopted."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from tests._support.stores import unique_prefix
from throttlekit._proto import throttlekit_pb2 as pb
from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc
from throttlekit.config import load_config
from throttlekit.server import RateLimiterService, serve

CONFIG = json.dumps(
    {
        "limiters": {
            "learn": {
                "concurrency": {"minLimit": 10, "maxLimit": 10},
                "jointLp": {
                    "types": [{"cost": 1, "value": 10, "weight": 1}, {"cost": 1, "value": 2, "weight": 1}],
                    "rateBudget": 1,
                    "costBudget": 10,
                    "adaptive": {"sampleWindow": 4},
                },
            }
        }
    }
)


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("dynamodb", marks=pytest.mark.dynamodb),
    ]
)
def shared(request: pytest.FixtureRequest) -> Callable[[], Any]:
    """A maker of stores on one table with one prefix (the servers of one fleet)."""
    prefix = unique_prefix("tklp")
    if request.param == "postgres":
        from throttlekit.stores.postgres import PostgresStore

        url, table = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_table")
        return lambda: PostgresStore(url, table=table, prefix=prefix, sweep_interval_ms=0)
    from throttlekit.stores.dynamodb import DynamoDBStore

    moto, table = request.getfixturevalue("moto"), request.getfixturevalue("ddb_table")
    return lambda: DynamoDBStore(
        table, region="us-east-1", endpoint=moto.endpoint, prefix=prefix, max_retries=200
    )


def _admit(stub: Any, value: int) -> Any:
    return stub.Admit(pb.AdmitRequest(policy="learn", key="k", cost=1, value=value), timeout=30)


def test_the_adaptive_learner_on_a_snapshot_store_is_shared_by_the_fleet(shared: Callable[[], Any]) -> None:
    first, second = shared, shared
    handles = [
        serve(RateLimiterService(load_config(CONFIG), store=first(), close_store=True), "127.0.0.1", 0)
    ]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{handles[0].port}") as ch:
            stub = pb_grpc.RateLimiterStub(ch)
            assert [_admit(stub, 3).policy_denied for _ in range(4)] == [True] * 4
            ok = _admit(stub, 3)
            assert ok.decision.allowed and ok.lease_id and not ok.policy_denied
        handles.append(
            serve(RateLimiterService(load_config(CONFIG), store=second(), close_store=True), "127.0.0.1", 0)
        )
        with grpc.insecure_channel(f"127.0.0.1:{handles[1].port}") as ch:
            stub = pb_grpc.RateLimiterStub(ch)
            assert _admit(stub, 3).decision.allowed  # frozen on the learned duals: bid 3
            assert _admit(stub, 2).policy_denied
    finally:
        for h in handles:
            h.close(grace=1)
