"""DynamoDB store: the Lua transforms under lupa over an item per key, with version compare-and-set.

One decision: a consistent ``GetItem`` per key (**1 round trip**), the Lua, then, only if the state
changed, a conditional ``PutItem`` (``version = :v``, or ``attribute_not_exists(pk)`` on first touch;
an expired-but-present item is overwritten through its stale version) or a conditional ``DeleteItem``
(**1 more round trip**; ``TransactWriteItems`` for multi-key transforms). A lost race
(``ConditionalCheckFailedException``) retries from the read, with jittered backoff, at most
``max_retries`` times (default 16), then raises :class:`~throttlekit.ConcurrentUpdateError`.

Item: ``pk`` (hash key, the full key), ``state`` (JSON in the upstream shapes), ``version`` (number),
``expires_at`` (epoch **seconds**, ``ceil(deadline / 1000)``, for DynamoDB's native TTL) and
``expires_at_ms`` (the exact deadline; an item is live while ``now <= expires_at_ms``). Persistent state
has neither. Native TTL deletes late (hours): reads ignore expired items, so that is only storage.

Timeouts: botocore ``connect_timeout``/``read_timeout`` (default 2 s each) with one retry at most, so an
unreachable endpoint answers ``StoreError`` within about ``2 x (connect + read)``. boto3 is imported
lazily; clients are thread-safe. The async API runs the HTTP calls in worker threads
(``asyncio.to_thread``) and the Lua on the loop thread.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

from .._clock import Clock
from .._errors import ConfigError, StoreError
from ._snapshot import Change, Record, SnapshotStore

__all__ = ["DynamoDBStore", "create_table"]

INSTALL_HINT = "the DynamoDB store needs boto3: pip install 'throttlekit-server[dynamodb]'"


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ConfigError(INSTALL_HINT) from exc
    return boto3


def make_client(
    region: str | None = None,
    endpoint: str | None = None,
    *,
    connect_timeout_s: float = 2.0,
    read_timeout_s: float = 2.0,
    max_pool_connections: int = 16,
) -> Any:
    """A low-level boto3 DynamoDB client with short timeouts and at most one transport retry."""
    boto3 = _boto3()
    from botocore.config import Config

    cfg = Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        retries={"total_max_attempts": 2, "mode": "standard"},
        max_pool_connections=max_pool_connections,
    )
    try:
        return boto3.session.Session().client(
            "dynamodb", region_name=region, endpoint_url=endpoint, config=cfg
        )
    except Exception as exc:  # NoRegionError and friends
        raise ConfigError(f"cannot build a DynamoDB client: {exc} (pass region= or set AWS_REGION)") from exc


def create_table(client: Any, table: str, *, hash_key: str = "pk", wait_s: float = 30.0) -> bool:
    """Create ``table`` (single string partition key, on-demand billing, TTL on ``expires_at``) unless it
    exists, and wait until it is ACTIVE (at most ``wait_s``). Returns True when it created the table."""
    created = False
    try:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": hash_key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": hash_key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        created = True
    except Exception as exc:
        if _code(exc) != "ResourceInUseException":
            raise StoreError(f"dynamodb: cannot create table {table!r}: {exc}", exc) from exc
    delay = 0.2
    waited = 0.0
    while True:
        try:
            status = client.describe_table(TableName=table)["Table"]["TableStatus"]
        except Exception as exc:
            raise StoreError(f"dynamodb: cannot describe table {table!r}: {exc}", exc) from exc
        if status == "ACTIVE":
            break
        if waited >= wait_s:
            raise StoreError(f"dynamodb: table {table!r} not ACTIVE after {wait_s} s (status {status})")
        time.sleep(delay)
        waited += delay
    if created:
        try:
            client.update_time_to_live(
                TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
            )
        except Exception:  # TTL is storage hygiene only; reads already ignore expired items
            pass
    return created


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _store_error(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    return StoreError(f"dynamodb: {type(exc).__name__}: {exc}", exc)


class _Txn:
    """One attempt: the items as read (live or not) and their versions."""

    def __init__(
        self, store: DynamoDBStore, keys: Sequence[str], items: list[dict[str, Any] | None], now: int
    ):
        self._store = store
        self.versions: dict[str, int | None] = {}
        recs: list[Record | None] = []
        for key, item in zip(keys, items):
            if item is None:
                self.versions[key] = None
                recs.append(None)
                continue
            version = int(item["version"]["N"]) if "version" in item else 0
            self.versions[key] = version
            if "expires_at_ms" in item:
                deadline: int | None = int(float(item["expires_at_ms"]["N"]))
            elif "expires_at" in item:
                deadline = int(float(item["expires_at"]["N"])) * 1000
            else:
                deadline = None
            live = deadline is None or now <= deadline
            recs.append(Record(item["state"]["S"], deadline, version) if live else None)
        self.records = recs

    def requests(self, changes: Sequence[Change]) -> list[tuple[str, dict[str, Any]]]:
        """(operation, parameters) per change, each conditioned on the version read."""
        s = self._store
        out: list[tuple[str, dict[str, Any]]] = []
        for c in changes:
            version = self.versions.get(c.key)
            if version is None:
                cond: dict[str, Any] = {
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": s.hash_key},
                }
            else:
                cond = {
                    "ConditionExpression": "#v = :v",
                    "ExpressionAttributeNames": {"#v": "version"},
                    "ExpressionAttributeValues": {":v": {"N": str(version)}},
                }
            if c.state is None:
                if version is None:
                    continue  # nothing stored: nothing to delete
                out.append(("Delete", {"TableName": s.table, "Key": {s.hash_key: {"S": c.key}}, **cond}))
                continue
            item: dict[str, Any] = {
                s.hash_key: {"S": c.key},
                "state": {"S": c.state},
                "version": {"N": str(0 if version is None else version + 1)},
            }
            if c.expires_at_ms is not None:
                item["expires_at"] = {"N": str(math.ceil(c.expires_at_ms / 1000))}
                item["expires_at_ms"] = {"N": str(int(c.expires_at_ms))}
            out.append(("Put", {"TableName": s.table, "Item": item, **cond}))
        return out

    def commit(self, changes: Sequence[Change]) -> bool:
        return self._store._write(self.requests(changes))

    def close(self) -> None:
        pass


class _ATxn:
    def __init__(self, txn: _Txn) -> None:
        self._txn = txn
        self.records = txn.records

    async def commit(self, changes: Sequence[Change]) -> bool:
        reqs = self._txn.requests(changes)
        if not reqs:
            return True
        return await asyncio.to_thread(self._txn._store._write, reqs)

    async def close(self) -> None:
        pass


class _AsyncTransport:
    def __init__(self, store: DynamoDBStore) -> None:
        self._s = store

    async def begin(self, keys: Sequence[str], now_ms: int, write: bool) -> _ATxn:
        items = await asyncio.to_thread(self._s._read, keys)
        return _ATxn(_Txn(self._s, keys, items, now_ms))

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._s.delete, key)


class DynamoDBStore(SnapshotStore):
    """A ``ScriptStore`` on DynamoDB (boto3): same Lua, state as JSON items (see the module doc).

    ``table`` must have a single string partition key ``hash_key`` (default ``pk``); ``create=True``
    creates it (on-demand, TTL on ``expires_at``) on first use and waits up to 30 s. ``region`` and
    ``endpoint`` (for DynamoDB Local or moto: ``http://127.0.0.1:8000``) configure the client unless one is
    given. ``prefix`` is the store-level key prefix; ``clock`` measures TTLs and answers ``SERVER_TIME``.
    Thread-safe. The client connects lazily: constructing the store never touches the network.
    """

    def __init__(
        self,
        table: str,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        client: Any = None,
        prefix: str = "",
        hash_key: str = "pk",
        clock: Clock | None = None,
        max_retries: int = 16,
        create: bool = False,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 2.0,
        runtime: str | None = None,
    ) -> None:
        if not isinstance(table, str) or not table:
            raise ConfigError(f"dynamodb table must be a non-empty string, got {table!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        super().__init__(clock=clock, prefix=prefix, max_retries=max_retries, runtime=runtime)
        self.table = table
        self.hash_key = hash_key
        self.region = region
        self.endpoint = endpoint
        self.client = (
            client
            if client is not None
            else make_client(
                region, endpoint, connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s
            )
        )
        self._create = create
        self._transport = self
        self._aio = _AsyncTransport(self)
        self._closed = False

    # -- transport ----------------------------------------------------------------------------------
    def _ensure_table(self) -> None:
        if self._create:
            create_table(self.client, self.table, hash_key=self.hash_key)
            self._create = False

    def _read(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        if self._closed:
            raise StoreError("dynamodb store is closed")
        self._ensure_table()
        out: list[dict[str, Any] | None] = []
        for k in keys:
            self.round_trips += 1
            try:
                resp = self.client.get_item(
                    TableName=self.table, Key={self.hash_key: {"S": k}}, ConsistentRead=True
                )
            except Exception as exc:
                raise _store_error(exc) from exc
            out.append(resp.get("Item"))
        return out

    def _write(self, reqs: list[tuple[str, dict[str, Any]]]) -> bool:
        """Apply the conditional writes; False when a condition failed (another writer won)."""
        if not reqs:
            return True
        self.round_trips += 1
        try:
            if len(reqs) == 1:
                op, params = reqs[0]
                if op == "Put":
                    self.client.put_item(**params)
                else:
                    self.client.delete_item(**params)
            else:
                self.client.transact_write_items(TransactItems=[{op: params} for op, params in reqs])
        except Exception as exc:
            code = _code(exc)
            if code == "ConditionalCheckFailedException":
                return False
            if code == "TransactionCanceledException" and "ConditionalCheckFailed" in str(exc):
                return False
            raise _store_error(exc) from exc
        return True

    def begin(self, keys: Sequence[str], now_ms: int, write: bool) -> _Txn:
        return _Txn(self, keys, self._read(keys), now_ms)

    async def _atransport(self) -> _AsyncTransport:
        return self._aio

    def delete(self, key: str) -> None:
        try:
            self.client.delete_item(TableName=self.table, Key={self.hash_key: {"S": key}})
        except Exception as exc:
            raise _store_error(exc) from exc

    # -- lifecycle ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Idempotent. The boto3 client's connection pool is released."""
        if not self._closed:
            self._closed = True
            try:
                self.client.close()
            except Exception:  # pragma: no cover - old botocore without close()
                pass

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> DynamoDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> DynamoDBStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DynamoDBStore(table={self.table!r}, prefix={self.prefix!r})"


def from_url(url: str, **kwargs: Any) -> DynamoDBStore:
    """``dynamodb://TABLE?region=R&endpoint=URL&prefix=P&create=1`` (also ``hash_key``, ``max_retries``)."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    table = parts.netloc + parts.path.rstrip("/")
    if not table:
        raise ConfigError(f"store URL {url!r}: expected dynamodb://TABLE")
    allowed = {"region", "endpoint", "prefix", "create", "hash_key", "max_retries"}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k not in allowed:
            raise ConfigError(
                f"store URL {url!r}: unknown parameter {k!r}; allowed: {', '.join(sorted(allowed))}"
            )
        if k == "create":
            kwargs.setdefault("create", v.lower() in ("1", "true", "yes", "on"))
        elif k == "max_retries":
            try:
                kwargs.setdefault("max_retries", int(v))
            except ValueError:
                raise ConfigError(f"store URL {url!r}: max_retries must be an integer, got {v!r}") from None
        else:
            kwargs.setdefault(k, v)
    return DynamoDBStore(table, **kwargs)
