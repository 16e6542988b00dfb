"""DynamoDB store: the Lua transforms under lupa over an item per key, with version compare-and-set.

One decision: a consistent ``GetItem`` per key (**1 round trip**), the Lua, then, only if the state
changed, a conditional ``PutItem`` (**1 more round trip**; ``TransactWriteItems`` for multi-key
transforms) conditioned on the version (and write token) read, or ``attribute_not_exists(pk)`` on first
touch; an expired-but-present item is overwritten through its stale version, and a key the Lua deletes
becomes a tombstone (``expires_at_ms`` 0). A lost race (``ConditionalCheckFailedException``) retries
from the read, with jittered backoff, at most ``max_retries`` times (default 16), then raises
:class:`~throttlekit.ConcurrentUpdateError`. A write whose outcome is unknown (botocore retried it after a
timeout, or it failed without an answer) is read back: its random token ``w`` says whether it applied,
so one decision never spends twice (see :class:`_Txn`).

Item: ``pk`` (hash key, the full key), ``state`` (JSON in the upstream shapes), ``version`` (number),
``w`` (the random token of the last write), ``expires_at`` (epoch **seconds**, ``ceil(deadline / 1000)``,
for DynamoDB's native TTL) and ``expires_at_ms`` (the exact deadline; an item is live while ``now <=
expires_at_ms``). Persistent state has neither. Native TTL deletes late (hours): reads ignore expired
items, so that is only storage.

Timeouts: botocore ``connect_timeout``/``read_timeout`` (default 2 s each) with one retry at most, so an
unreachable endpoint answers ``StoreError`` within about ``2 x (connect + read)``. boto3 is imported
lazily; clients are thread-safe. The async API runs the HTTP calls in worker threads
(``asyncio.to_thread``) and the Lua on the loop thread. :meth:`DynamoDBStore.aping` is the startup check.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
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


_AUTH_CODES = frozenset({
    "UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
    "ExpiredTokenException", "MissingAuthenticationTokenException", "InvalidClientTokenId",
    "IncompleteSignatureException", "AuthFailure", "SignatureDoesNotMatch",
})  # fmt: skip


def _startup_error(exc: BaseException, where: str) -> Exception:
    """The startup check's verdict on ``exc``: ``ConfigError`` when DynamoDB answered, else ``StoreError``."""
    code = _code(exc)
    response = getattr(exc, "response", None)
    status = (
        response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(response, dict) else None
    )
    if code and code not in _AUTH_CODES and status in (401, 403):  # an auth failure in a non-JSON body
        found = re.search(r"<Code>(.*?)</Code>", str(exc))
        code = found.group(1) if found else "AccessDenied"
        found = re.search(r"<Message>(.*?)</Message>", str(exc))
        return ConfigError(
            f"dynamodb: credentials rejected for {where}: {code}: {found.group(1) if found else status}"
        )
    if code == "ResourceNotFoundException":
        return ConfigError(
            f"dynamodb: {where} does not exist (create it, or pass create=1 / --dynamodb-create-table)"
        )
    if code in _AUTH_CODES:
        return ConfigError(f"dynamodb: credentials rejected for {where}: {code}: {_message(exc)}")
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "NoRegionError"):
        return ConfigError(f"dynamodb: {where}: {exc}")
    if code:  # any other answer from DynamoDB: the request itself is wrong
        return ConfigError(f"dynamodb: {where}: {code}: {_message(exc)}")
    return StoreError(f"dynamodb: cannot reach {where}: {name}: {exc}", exc)


def _message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)


#: Tokens of the last writes an item keeps (``ws``): an unconfirmed write is still recognisable after
#: this many later writes to the same key.
HISTORY = 32


def _tokens(item: dict[str, Any]) -> list[str]:
    """The item's write tokens, newest first (``ws``; else its single ``w``; none for foreign writers)."""
    if "ws" in item:
        return [t["S"] for t in item["ws"]["L"]]
    return [item["w"]["S"]] if "w" in item else []


def _verdict(put: dict[str, Any], token: str, item: dict[str, Any] | None, conflict: bool) -> bool | None:
    """Did our unconfirmed ``put`` apply? True, False (it did not and never will: retry the decision), or
    None (cannot tell). ``item`` is the key as read back; ``conflict``: the last attempt was refused by
    its condition (so no earlier attempt can still apply: the condition no longer holds)."""
    if item is not None and token in _tokens(item):
        return True
    written = int(put["Item"]["version"]["N"])
    if not conflict:  # no answer: the request may still be in flight, and apply if its condition holds
        values = put.get("ExpressionAttributeValues", {})
        if item is None:
            still_possible = "attribute_not_exists" in put["ConditionExpression"]
        else:
            version = int(item["version"]["N"]) if "version" in item else 0
            held = _tokens(item)
            still_possible = (
                "attribute_not_exists" not in put["ConditionExpression"]
                and str(version) == values[":v"]["N"]
                and (":w" not in values or (held[:1] == [values[":w"]["S"]]))
            )
        if still_possible:
            return None
    if item is None:
        return False  # the key is gone (reset): our write is not there and cannot apply any more
    version = int(item["version"]["N"]) if "version" in item else 0
    covered = version - len(_tokens(item)) < written <= version  # our version's token would be listed
    return False if covered or written > version else None


def _retry_attempts(exc: BaseException) -> int:
    """How many times botocore retried the request that raised ``exc`` (0 when unknown)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0)
    return 0


def _store_error(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    return StoreError(f"dynamodb: {type(exc).__name__}: {exc}", exc)


class _Txn:
    """One attempt: the items as read (expired ones included), their versions and write tokens.

    Every write is a conditional ``PutItem`` carrying a fresh random token, conditioned on the version
    (and token, when the item has one) that was read; the item keeps the tokens of its last
    :data:`HISTORY` writes, newest first (``ws``). A key the Lua deleted becomes a tombstone
    (``expires_at_ms`` 0: dead for every reader, removed by native TTL) rather than a ``DeleteItem``, so
    every write stays recognisable.

    Why: botocore retries a request that timed out. When the first attempt did apply, the retry fails
    its condition (``ConditionalCheckFailedException``), and treating that as a lost race re-ran the
    decision on top of our own applied write: two units spent for one answer (the fleet test's counts
    drifted from the answers under load). An unconfirmed write is now read back and judged by
    :func:`_verdict`. The token in the condition also closes the ABA hole of versions restarting at 0
    after a delete: a recreated item has other tokens.
    """

    def __init__(self, store: DynamoDBStore, keys: Sequence[str], items: list[dict[str, Any] | None]):
        self._store = store
        self._read: dict[str, tuple[int, list[str]] | None] = {}
        recs: list[Record | None] = []
        for key, item in zip(keys, items):
            if item is None:
                self._read[key] = None
                recs.append(None)
                continue
            version = int(item["version"]["N"]) if "version" in item else 0
            self._read[key] = (version, _tokens(item))
            if "expires_at_ms" in item:
                deadline: int | None = int(float(item["expires_at_ms"]["N"]))
            elif "expires_at" in item:
                deadline = int(float(item["expires_at"]["N"])) * 1000
            else:
                deadline = None
            recs.append(Record(item["state"]["S"], deadline, version))
        self.records = recs

    def requests(self, changes: Sequence[Change]) -> tuple[list[dict[str, Any]], str]:
        """The conditional puts for ``changes`` and the token they carry."""
        s = self._store
        token = secrets.token_urlsafe(6)
        out: list[dict[str, Any]] = []
        for c in changes:
            read = self._read.get(c.key)
            if read is None:
                if c.state is None:
                    continue  # nothing stored: nothing to delete
                cond: dict[str, Any] = {
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": s.hash_key},
                }
            else:
                version, old = read
                names = {"#v": "version"}
                values: dict[str, Any] = {":v": {"N": str(version)}}
                expr = "#v = :v"
                if old:
                    names["#w"] = "w"
                    values[":w"] = {"S": old[0]}
                    expr += " AND #w = :w"
                cond = {"ConditionExpression": expr, "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values}  # fmt: skip
            history = [token, *(read[1] if read is not None else [])][:HISTORY]
            item: dict[str, Any] = {
                s.hash_key: {"S": c.key},
                "version": {"N": str(0 if read is None else read[0] + 1)},
                "w": {"S": token},
                "ws": {"L": [{"S": t} for t in history]},
            }
            if c.state is None:  # a tombstone: dead for every reader, swept by native TTL
                item["state"] = {"S": "null"}
                item["expires_at"] = {"N": str(math.ceil(time.time()))}
                item["expires_at_ms"] = {"N": "0"}
            else:
                item["state"] = {"S": c.state}
                if c.expires_at_ms is not None:
                    item["expires_at"] = {"N": str(math.ceil(c.expires_at_ms / 1000))}
                    item["expires_at_ms"] = {"N": str(int(c.expires_at_ms))}
            out.append({"TableName": s.table, "Item": item, **cond})
        return out, token

    def commit(self, changes: Sequence[Change]) -> bool:
        puts, token = self.requests(changes)
        return self._store.write(puts, token)

    def close(self) -> None:
        pass


class _ATxn:
    def __init__(self, txn: _Txn, store: DynamoDBStore) -> None:
        self._txn = txn
        self._store = store
        self.records = txn.records

    async def commit(self, changes: Sequence[Change]) -> bool:
        puts, token = self._txn.requests(changes)
        if not puts:
            return True
        return await asyncio.to_thread(self._store.write, puts, token)

    async def close(self) -> None:
        pass


class _AsyncTransport:
    def __init__(self, store: DynamoDBStore) -> None:
        self._s = store

    async def begin(self, keys: Sequence[str], write: bool) -> _ATxn:
        return _ATxn(await asyncio.to_thread(self._s.begin, keys, write), self._s)

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

    def write(self, puts: list[dict[str, Any]], token: str) -> bool:
        """Apply the conditional puts (one transaction for several); False when another writer won.

        When the outcome is unknown (a failed condition after botocore retried, or no answer at all),
        the first item is read back and :func:`_verdict` decides; a write whose fate cannot be told
        raises ``StoreError`` (the fail mode answers) instead of risking a second spend.
        """
        if not puts:
            return True
        self.round_trips += 1
        try:
            if len(puts) == 1:
                self.client.put_item(**puts[0])
            else:
                self.client.transact_write_items(TransactItems=[{"Put": p} for p in puts])
        except Exception as exc:
            code = _code(exc)
            conflict = code == "ConditionalCheckFailedException" or (
                code == "TransactionCanceledException" and "ConditionalCheckFailed" in str(exc)
            )
            if conflict and _retry_attempts(exc) == 0:
                return False  # our only attempt was refused: a lost race, nothing of ours applied
            if not conflict and code:
                raise _store_error(exc) from exc  # DynamoDB answered with an error: nothing applied
            put = puts[0]
            self.round_trips += 1
            try:
                item = self.client.get_item(
                    TableName=self.table, Key={self.hash_key: put["Item"][self.hash_key]}, ConsistentRead=True
                ).get("Item")
            except Exception:
                raise _store_error(exc) from exc  # still unreachable: report the original failure
            verdict = _verdict(put, token, item, conflict)
            if verdict is None:
                raise StoreError(
                    f"dynamodb: the outcome of a write to {put['Item'][self.hash_key]['S']!r} is unknown "
                    f"({type(exc).__name__}: {exc})",
                    exc,
                ) from exc
            return verdict
        return True

    def begin(self, keys: Sequence[str], write: bool) -> _Txn:
        return _Txn(self, keys, self._read(keys))

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

    def check_startup(self) -> None:
        """The startup check: the table exists (created when ``create``) with the key schema this store
        writes, and the credentials are accepted. ``StoreError`` when the endpoint cannot be reached,
        ``ConfigError`` naming the table, region and what is wrong otherwise."""
        where = f"table {self.table!r} in region {self.client.meta.region_name!r}"
        if self.endpoint:
            where += f" at {self.endpoint}"
        try:
            if self._create:
                self._ensure_table()
            desc = self.client.describe_table(TableName=self.table)["Table"]
            schema = [(k["AttributeName"], k["KeyType"]) for k in desc.get("KeySchema", [])]
            if schema != [(self.hash_key, "HASH")]:
                raise ConfigError(
                    f"dynamodb: {where} has key schema {schema}; this store needs a single string partition "
                    f"key {self.hash_key!r} (hash_key=) and no sort key"
                )
            key = {self.hash_key: {"S": f"{self.prefix}:__ping__"}}
            self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        except ConfigError:
            raise
        except StoreError as exc:
            raise _startup_error(exc.store_error or exc, where) from exc
        except Exception as exc:
            raise _startup_error(exc, where) from exc

    async def aping(self) -> None:
        """See :meth:`check_startup` (run in a worker thread)."""
        await asyncio.to_thread(self.check_startup)

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
