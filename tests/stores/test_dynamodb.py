"""DynamoDB specifics (moto server mode): item attributes, version CAS, table creation, URL, outage."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

import throttlekit as tk
from tests._support.services import DelayProxy, Moto, free_port
from throttlekit.stores import from_url
from throttlekit.stores.dynamodb import DynamoDBStore, create_table, make_client

pytestmark = pytest.mark.dynamodb


def _item(store: DynamoDBStore, key: str) -> dict[str, Any] | None:
    return store.client.get_item(TableName=store.table, Key={"pk": {"S": key}}, ConsistentRead=True).get(
        "Item"
    )


def test_item_attributes(ddb_store: Any) -> None:
    clock = tk.ManualClock(10_500)
    s = ddb_store(clock)
    try:
        tk.Limiter(tk.FixedWindow(5, 1000), store=s, clock=clock).check("fw", 2)
        item = _item(s, s.prefix + ":fw")
        assert item is not None
        assert json.loads(item["state"]["S"]) == {"start": 10_000, "count": 2}
        assert item["version"] == {"N": "0"}
        assert item["expires_at_ms"] == {"N": "11000"}
        assert item["expires_at"] == {"N": "11"}  # epoch seconds, ceil: native TTL
        tk.Limiter(tk.FixedWindow(5, 1000), store=s, clock=clock).check("fw")
        assert _item(s, s.prefix + ":fw")["version"] == {"N": "1"}  # type: ignore[index]
    finally:
        s.close()


def test_expired_item_is_overwritten_through_its_stale_version(ddb_store: Any) -> None:
    clock = tk.ManualClock(0)
    s = ddb_store(clock)
    try:
        k = s.prefix + ":e"
        assert s.eval("fixed_window", [k], 0, [1, 1000, 1])[0] == 1
        clock.set(5_000)  # expired, still present (native TTL is lazy)
        assert s.eval("fixed_window", [k], 0, [1, 1000, 1])[0] == 1
        assert _item(s, k)["version"] == {"N": "1"}  # type: ignore[index]
    finally:
        s.close()


def test_conflicts_exhaust_bounded_retries(ddb_store: Any) -> None:
    s = ddb_store(tk.ManualClock(0), max_retries=2)
    k = s.prefix + ":race"
    s.eval("fixed_window", [k], 0, [100, 1000, 1])
    real_write = s.write

    def racing_write(puts: Any, token: str) -> bool:  # another writer bumps the version in between
        item = _item(s, k)
        assert item is not None
        item["version"] = {"N": str(int(item["version"]["N"]) + 1)}
        s.client.put_item(TableName=s.table, Item=item)
        return real_write(puts, token)  # type: ignore[no-any-return]

    s.write = racing_write  # type: ignore[method-assign]
    try:
        with pytest.raises(tk.ConcurrentUpdateError) as info:
            s.eval("fixed_window", [k], 0, [100, 1000, 1])
        assert info.value.attempts == 3
    finally:
        s.close()


def test_create_table_waits_and_is_idempotent(moto: Moto) -> None:
    client = make_client("us-east-1", moto.endpoint)
    name = f"tkt-c-{uuid.uuid4().hex[:8]}"
    try:
        assert create_table(client, name) is True
        assert create_table(client, name) is False
        desc = client.describe_table(TableName=name)["Table"]
        assert desc["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
        assert desc["TableStatus"] == "ACTIVE"
        ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl.get("AttributeName") == "expires_at"
    finally:
        client.delete_table(TableName=name)
        client.close()


def test_from_url_creates_the_table_on_first_use(moto: Moto) -> None:
    name = f"tkt-u-{uuid.uuid4().hex[:8]}"
    s = from_url(f"dynamodb://{name}?region=us-east-1&endpoint={moto.endpoint}&prefix=P&create=1")
    try:
        assert isinstance(s, DynamoDBStore) and (s.table, s.prefix) == (name, "P")
        assert tk.Limiter(tk.Gcra(10, 1000), store=s).check("k").allowed
        assert _item(s, "P:k") is not None
    finally:
        s.client.delete_table(TableName=name)
        s.close()
    with pytest.raises(tk.ConfigError, match="unknown parameter"):
        from_url("dynamodb://t?bogus=1")
    with pytest.raises(tk.ConfigError, match="expected dynamodb://TABLE"):
        from_url("dynamodb://")


def test_unreachable_endpoint_is_a_prompt_store_error() -> None:
    s = DynamoDBStore("t", region="us-east-1", endpoint=f"http://127.0.0.1:{free_port()}")
    try:
        t0 = time.monotonic()
        with pytest.raises(tk.StoreError):
            s.eval("gcra", ["k"], 0, [1000, 10, 10, 1])
        assert time.monotonic() - t0 < 2.0
    finally:
        s.close()


def test_round_trips_per_decision(ddb_store: Any) -> None:
    """GetItem, then a conditional PutItem only when the state changed."""
    s = ddb_store(None)
    lim = tk.Limiter(tk.Gcra(1, 60_000), store=s)
    try:
        for call, trips in (
            (lambda: lim.check("k"), 2),
            (lambda: lim.check("k"), 1),
            (lambda: lim.peek("k"), 1),
        ):
            before = s.round_trips
            call()
            assert s.round_trips - before == trips
    finally:
        s.close()


def test_a_write_applied_behind_a_timeout_is_spent_once(moto: Moto, ddb_table: str) -> None:
    """Four stores (as four processes would) on one key through a proxy that answers every second
    PutItem late, after the client's read timeout: moto applied it, botocore retried it, and the retry
    failed its version condition. Reading that as a lost race re-ran the decision on top of our own
    write (two units spent for one answer: the stored count ran ahead of the admitted calls). Each
    write's token now tells that it applied: stored count == admitted == calls, no errors."""
    import threading

    proxy = DelayProxy(moto.port, delay_s=1.0, every=2, match="DynamoDB_20120810.PutItem")
    clock = tk.ManualClock(5_000)  # one fixed window for the whole test
    prefix = f"tkt-{uuid.uuid4().hex[:8]}"
    stores = [
        DynamoDBStore(
            ddb_table,
            region="us-east-1",
            endpoint=proxy.endpoint,
            clock=clock,
            prefix=prefix,
            max_retries=200,
            read_timeout_s=0.6,
        )
        for _ in range(4)
    ]
    admitted: list[bool] = []
    errors: list[BaseException] = []

    def worker(s: DynamoDBStore) -> None:
        lim = tk.Limiter(tk.FixedWindow(1000, 60_000), store=s)
        for _ in range(6):
            try:
                admitted.append(lim.check("k").allowed)
            except tk.StoreError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        item = _item(stores[0], f"{prefix}:k")
        assert item is not None
        assert errors == []
        assert admitted == [True] * 24
        assert json.loads(item["state"]["S"])["count"] == 24
    finally:
        for s in stores:
            s.close()
        proxy.stop()


def _put(version: int, read: tuple[int, str] | None) -> dict[str, Any]:
    """A conditional put as the store builds it: writing ``version``, having read ``read``."""
    if read is None:
        return {"Item": {"version": {"N": str(version)}}, "ConditionExpression": "attribute_not_exists(#pk)"}
    return {
        "Item": {"version": {"N": str(version)}},
        "ConditionExpression": "#v = :v AND #w = :w",
        "ExpressionAttributeValues": {":v": {"N": str(read[0])}, ":w": {"S": read[1]}},
    }


def _stored(version: int, *tokens: str) -> dict[str, Any]:
    return {"version": {"N": str(version)}, "w": {"S": tokens[0]}, "ws": {"L": [{"S": t} for t in tokens]}}


@pytest.mark.parametrize(
    ("put", "item", "conflict", "verdict"),
    [
        (_put(6, (5, "a")), _stored(6, "ours", "a"), True, True),  # applied, then the retry was refused
        (_put(6, (5, "a")), _stored(8, "c", "b", "ours", "a"), True, True),  # applied, since superseded
        (_put(6, (5, "a")), _stored(6, "b", "a"), True, False),  # another writer won version 6
        (_put(6, (5, "a")), _stored(5, "a"), False, None),  # no answer, unchanged: may still apply
        (_put(6, (5, "a")), _stored(7, "c", "b", "a"), False, False),  # no answer, and it lost for good
        (_put(6, (5, "a")), _stored(60, *[f"t{i}" for i in range(32)]), True, None),  # beyond the history
        (_put(6, (5, "a")), None, True, False),  # reset meanwhile: ours is not there and cannot apply
        (_put(0, None), None, False, None),  # a first write with no answer: may still apply
        (_put(0, None), _stored(0, "b"), False, False),  # someone else created the key
        (_put(0, None), _stored(0, "ours"), False, True),
        (_put(3, (2, "x")), {"version": {"N": "3"}, "state": {"S": "{}"}}, True, None),  # a foreign writer
    ],
)
def test_the_verdict_on_an_unconfirmed_write(
    put: dict[str, Any], item: dict[str, Any] | None, conflict: bool, verdict: bool | None
) -> None:
    from throttlekit.stores.dynamodb import _verdict

    assert _verdict(put, "ours", item, conflict) is verdict
