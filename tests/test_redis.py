"""Redis specifics: EVALSHA/NOSCRIPT, script identity, the server clock, batching, failures, and one
shared limit with throttlekit-py's RedisBackend on the same keys."""

from __future__ import annotations

import json
import socket
import time
import uuid
from typing import Any

import pytest
import redis as redis_lib

import throttlekit as tk
from tests._support.env import REDIS_URL, redis_client
from throttlekit._loader import load_manifest

pytestmark = pytest.mark.redis


def test_precomputed_sha_matches_script_load(redis_store: tk.RedisStore) -> None:
    for t in load_manifest().values():
        assert redis_store.client.script_load(t.source) == t.sha


def test_noscript_loads_and_retries_once(redis_store: tk.RedisStore, clock: tk.ManualClock) -> None:
    limiter = tk.Limiter(tk.Gcra(10, "1s", burst=3), store=redis_store, clock=clock)
    assert limiter.check("k").remaining == 2
    redis_store.client.script_flush()
    assert limiter.check("k").remaining == 1
    redis_store.client.script_flush()
    assert [d.remaining for d in limiter.check_many(["k", "j"])] == [0, 2]


def test_server_clock_is_the_default(redis_store: tk.RedisStore) -> None:
    limiter = tk.Limiter(tk.FixedWindow(5, "1h"), store=redis_store)
    before = time.time() * 1000
    d = limiter.check("k")
    server_ms = int(float(".".join(map(str, redis_store.client.time()))) * 1000)
    hour = 3_600_000
    assert d.reset_at == (server_ms // hour + 1) * hour or d.reset_at == (before // hour + 1) * hour


def test_check_many_is_one_round_trip(
    redis_store: tk.RedisStore, clock: tk.ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = tk.Limiter(tk.Gcra(100, "1s"), store=redis_store, clock=clock)
    limiter.check("warm")  # loads the script
    from throttlekit.stores._redisconn import Connection

    sends: list[int] = []
    original = Connection.call_many

    def counting(self: Any, payload: bytes, n: int) -> Any:
        sends.append(payload.count(b"EVALSHA"))
        return original(self, payload, n)

    monkeypatch.setattr(Connection, "call_many", counting)
    out = limiter.check_many([f"k{i}" for i in range(100)])
    if "Fake" in type(redis_store.client).__name__:
        return  # fakeredis has no sockets; the real server proves the round trip
    assert sends == [100] and all(d.allowed for d in out)


def test_plain_redis_py_path_without_a_plain_pool(clock: tk.ManualClock) -> None:
    """Clients without a plain ConnectionPool (cluster, sentinel, blocking pools) use redis-py's own calls."""
    client = redis_client()
    if "Fake" in type(client).__name__:
        pytest.skip("fakeredis already uses the redis-py path")
    pool = redis_lib.BlockingConnectionPool.from_url(REDIS_URL)
    store = tk.RedisStore(redis_lib.Redis(connection_pool=pool), prefix=f"tkt-{uuid.uuid4().hex[:10]}")
    limiter = tk.Limiter(tk.FixedWindow(2, 1000), store=store, clock=clock)
    assert [d.allowed for d in limiter.check_many(["a", "a", "a"])] == [True, True, False]
    assert not limiter.check("a").allowed
    limiter.reset("a")
    store.close()


def test_script_error_is_typed(redis_store: tk.RedisStore) -> None:
    redis_store.client.set(f"{redis_store.prefix}:wrong", "x")
    limiter = tk.Limiter(tk.TokenBucket(5, 1), store=redis_store)
    with pytest.raises(tk.ScriptError, match=r"token_bucket.*WRONGTYPE"):
        limiter.check("wrong")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_redis_is_a_store_error() -> None:
    store = tk.RedisStore(url=f"redis://127.0.0.1:{_free_port()}/0", socket_connect_timeout=0.2)
    limiter = tk.Limiter(tk.Gcra(5, 1000), store=store)
    with pytest.raises(tk.StoreError, match="redis:") as info:
        limiter.check("k")
    assert isinstance(info.value.store_error, OSError)
    with pytest.raises(tk.StoreError):
        limiter.check_many(["a", "b"])
    store.close()
    store.close()


def test_from_url_redis_with_prefix() -> None:
    redis_client()
    store = tk.from_url(f"{REDIS_URL}?prefix=tkt-url")
    assert isinstance(store, tk.RedisStore) and store.prefix == "tkt-url"
    store.close()


TKPY = """
import json, sys, redis
from throttlekit import RedisBackend
from throttlekit.strategies import Gcra, TokenBucket, FixedWindow, SlidingWindow, SlidingWindowLog
url, prefix, kind, params, ops = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
strategy = {"gcra": Gcra, "tokenBucket": TokenBucket, "fixedWindow": FixedWindow, "slidingWindow": SlidingWindow,
            "slidingWindowLog": SlidingWindowLog}[kind](**params)
backend = RedisBackend(redis.Redis.from_url(url), strategy, prefix=prefix)
out = []
for now, cost in ops:
    d = backend.check("shared", cost, now=now)
    out.append([d.allowed, d.limit, d.remaining, d.reset_at, d.retry_after_ms])
print(json.dumps(out))
"""

#: Every duration is scaled from seconds to hours: Redis expires keys on its real clock while the ops run
#: on a manual one, and throttlekit-py runs in a subprocess per op (hundreds of ms on a loaded machine),
#: so second-scale TTLs could lapse between two ops and split the shared state.
HOUR = 3600
INTEROP = [
    ("gcra", {"limit": 10, "period_ms": 1000 * HOUR, "burst": 5}, tk.Gcra(10, 1000 * HOUR, burst=5)),
    ("tokenBucket", {"capacity": 10, "refill_per_sec": 5 / HOUR}, tk.TokenBucket(10, 5 / HOUR)),
    ("fixedWindow", {"limit": 5, "window_ms": 1000 * HOUR}, tk.FixedWindow(5, 1000 * HOUR)),
    (
        "slidingWindow",
        {"limit": 10, "window_ms": 1000 * HOUR, "buckets": 10},
        tk.SlidingWindow(10, 1000 * HOUR, 10),
    ),
    ("slidingWindowLog", {"limit": 5, "window_ms": 1000 * HOUR}, tk.SlidingWindowLog(5, 1000 * HOUR)),
]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "py_params", "strategy"), INTEROP, ids=[k for k, _, _ in INTEROP])
def test_one_limit_shared_with_throttlekit_py(
    kind: str, py_params: dict[str, int], strategy: tk.Strategy
) -> None:
    """Alternate throttlekit-py's RedisBackend (its vendored upstream Lua) and ours on one Redis key:
    each sees the other's consumption, and together they answer exactly like one limiter."""
    from tests._support.tkpy import run_tkpy

    client = redis_client()
    if not isinstance(client, redis_lib.Redis) or "Fake" in type(client).__name__:
        pytest.skip("needs a real Redis server shared by two processes")
    prefix = f"tkt-{uuid.uuid4().hex[:10]}"
    base = 1_700_000_000_000
    ops = [
        (base + t * HOUR, c)
        for t, c in [
            (0, 3),
            (0, 1),
            (100, 2),
            (150, 1),
            (200, 4),
            (400, 1),
            (900, 2),
            (1000, 1),
            (1000, 3),
            (1500, 2),
            (2100, 1),
            (2100, 5),
        ]
    ]
    # reference: one limiter of ours on its own key
    clock = tk.ManualClock(0)
    ref_store = tk.RedisStore(client, prefix=f"{prefix}-ref")
    ref = tk.Limiter(strategy, store=ref_store, clock=clock)
    expected = []
    for now, cost in ops:
        clock.set(now)
        d = ref.check("shared", cost)
        expected.append([d.allowed, d.limit, d.remaining, d.reset_at, d.retry_after_ms])
    # shared: their ops at even positions, ours at odd ones, on one key
    ours = tk.Limiter(strategy, store=tk.RedisStore(client, prefix=prefix), clock=clock)
    got: list[list[Any]] = []
    for i in range(0, len(ops), 2):
        theirs = json.loads(
            run_tkpy(TKPY, REDIS_URL, prefix, kind, json.dumps(py_params), json.dumps([ops[i]]))
        )
        got.extend(theirs)
        clock.set(ops[i + 1][0])
        d = ours.check("shared", ops[i + 1][1])
        got.append([d.allowed, d.limit, d.remaining, d.reset_at, d.retry_after_ms])
    assert got == expected
    ours.reset("shared")
    ref.reset("shared")


def test_short_lived_threads_return_their_connections(clock: tk.ManualClock) -> None:
    import threading

    client = redis_client()
    if "Fake" in type(client).__name__:
        pytest.skip("fakeredis has no connection pool to observe")
    name = f"tkt-{uuid.uuid4().hex[:10]}"
    store = tk.RedisStore(url=REDIS_URL, prefix=name, client_name=name)
    limiter = tk.Limiter(tk.FixedWindow(1000, 60_000), store=store, clock=clock)
    for _ in range(20):
        t = threading.Thread(target=limiter.check, args=("k",))
        t.start()
        t.join()
    opened = [c for c in client.client_list() if c.get("name") == name]
    assert len(opened) == 1  # one connection, back in the free list, not one per finished thread
    assert limiter.check("k").remaining == 1000 - 21
    limiter.reset("k")
    store.close()
