"""Measure the worst single request of each strategy: memory store (both Lua runtimes), Redis, Postgres, DynamoDB.

Each strategy is taken to the bound that maximises the work of one call (the sliding log at its
``MAX_LIMIT`` with cost = limit, on an empty log, on a full one whose entries all expire at once, and
above the limit; the sliding window at ``MAX_BUCKETS`` with every bucket filled; the others at cost
2^53-1) and the slowest of ``--reps`` runs of that one call is printed, in ms. Each cell is the
median of ``--reps`` runs and, in brackets, the slowest (on a shared machine the slowest run measures the
scheduler as much as the request). The table in docs/stores.md ("Worst single request") comes from this
script:

    python scripts/worst_request.py [--redis redis://127.0.0.1:6379/0] [--reps 3]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from typing import Any

import throttlekit as tk
from throttlekit._lupa import RUNTIMES
from throttlekit.strategies import MAX_BUCKETS, MAX_COST

LOG = tk.SlidingWindowLog.MAX_LIMIT


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def scenarios(make_store: Callable[[tk.ManualClock], Any]) -> dict[str, Callable[[], float]]:
    """name -> a function that prepares a fresh key and returns the ms of the one request measured."""

    def single(strategy: tk.Strategy, cost: int) -> Callable[[], float]:
        def run() -> float:
            clock = tk.ManualClock(1_700_000_000_000)
            lim = tk.Limiter(strategy, store=make_store(clock), prefix=uuid.uuid4().hex, clock=clock)
            lim.check("k")
            return _timed(lambda: lim.check("k", cost))

        return run

    def log_empty() -> float:
        clock = tk.ManualClock(1_700_000_000_000)
        lim = tk.Limiter(
            tk.SlidingWindowLog(LOG, "1h"), store=make_store(clock), prefix=uuid.uuid4().hex, clock=clock
        )
        return _timed(lambda: lim.check("k", LOG))

    def log_expire_and_refill() -> float:
        clock = tk.ManualClock(1_700_000_000_000)
        lim = tk.Limiter(
            tk.SlidingWindowLog(LOG, "1h"), store=make_store(clock), prefix=uuid.uuid4().hex, clock=clock
        )
        lim.check("k", LOG)
        clock.advance(3_600_000)  # every entry leaves the window at once: prune LOG, then add LOG
        return _timed(lambda: lim.check("k", LOG))

    def log_above_limit() -> float:
        clock = tk.ManualClock(1_700_000_000_000)
        lim = tk.Limiter(
            tk.SlidingWindowLog(LOG, "1h"), store=make_store(clock), prefix=uuid.uuid4().hex, clock=clock
        )
        lim.check("k", LOG)
        return _timed(lambda: lim.check("k", MAX_COST))

    def log_peek_full() -> float:
        clock = tk.ManualClock(1_700_000_000_000)
        lim = tk.Limiter(
            tk.SlidingWindowLog(LOG, "1h"), store=make_store(clock), prefix=uuid.uuid4().hex, clock=clock
        )
        lim.check("k", LOG)
        return _timed(lambda: lim.peek("k"))

    def ring_full() -> float:
        # every slot of the ring in use: the hash is installed directly (filling it through checks would
        # read the growing ring once per check); slot (tick mod (buckets+1)) = "<tick>:1", ticks c-buckets..c
        clock = tk.ManualClock(1_700_000_000_000)
        store = make_store(clock)
        prefix = uuid.uuid4().hex
        lim = tk.Limiter(
            tk.SlidingWindow(10**12, MAX_BUCKETS, buckets=MAX_BUCKETS),
            store=store,
            prefix=prefix,
            clock=clock,
        )
        c = clock.now_ms()  # bucket width 1 ms: the current tick is now
        ring = {str(t % (MAX_BUCKETS + 1)): f"{t}:1" for t in range(c - MAX_BUCKETS, c + 1)}
        key = lim._kp + "k"
        if isinstance(store, tk.MemoryStore):
            store.engine.load(c, key, "hash", ring, None)
        elif isinstance(store, tk.RedisStore):
            store.client.hset(key, mapping=ring)
        else:  # a snapshot store: fill the ring through the store itself, one tick at a time
            clock.set(c - MAX_BUCKETS)
            for _ in range(MAX_BUCKETS):
                lim.check("k")
                clock.advance(1)
        return _timed(lambda: lim.check("k"))

    return {
        "gcra cost 2^53-1": single(tk.Gcra(10, "1m"), MAX_COST),
        "tokenBucket cost 2^53-1": single(tk.TokenBucket(10, 1), MAX_COST),
        "fixedWindow cost 2^53-1": single(tk.FixedWindow(10, "1m"), MAX_COST),
        "quota (calendar-month) cost 2^53-1": single(tk.Quota(10, "calendar-month"), MAX_COST),
        f"slidingWindow {MAX_BUCKETS} buckets, all filled": ring_full,
        f"slidingWindowLog limit {LOG}, cost {LOG}, empty log": log_empty,
        f"slidingWindowLog limit {LOG}, cost {LOG}, {LOG} entries expire at once": log_expire_and_refill,
        f"slidingWindowLog limit {LOG}, cost 2^53-1 (above the limit)": log_above_limit,
        f"slidingWindowLog limit {LOG}, peek on a full log": log_peek_full,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", default=None, help="a Redis URL to measure too (keys use a random prefix)")
    ap.add_argument("--postgres", default=None, help="a Postgres URL to measure too (a table of its own)")
    ap.add_argument(
        "--dynamodb",
        default=None,
        help="a DynamoDB endpoint to measure too (e.g. moto_server or DynamoDB Local; a table of its own)",
    )
    ap.add_argument("--reps", type=int, default=5)
    opts = ap.parse_args()
    stores: dict[str, Callable[[tk.ManualClock], Any]] = {
        f"memory ({rt})": (lambda clock, rt=rt: tk.MemoryStore(clock=clock, runtime=rt))
        for rt in sorted(RUNTIMES)
    }
    if opts.postgres:
        from throttlekit.stores.postgres import PostgresStore

        pg_table = f"tkworst_{uuid.uuid4().hex[:8]}"
        pg: list[Any] = []

        def postgres(clock: tk.ManualClock) -> Any:
            store = PostgresStore(opts.postgres, table=pg_table, clock=clock, sweep_interval_ms=0)
            pg.append(store)
            return store

        stores["postgres"] = postgres
    if opts.dynamodb:
        from throttlekit.stores.dynamodb import DynamoDBStore

        ddb_table = f"tkworst-{uuid.uuid4().hex[:8]}"

        def dynamodb(clock: tk.ManualClock) -> Any:
            return DynamoDBStore(
                ddb_table, region="us-east-1", endpoint=opts.dynamodb, clock=clock, create=True
            )

        stores["dynamodb"] = dynamodb
    if opts.redis:
        import redis

        client = redis.Redis.from_url(opts.redis)
        client.ping()
        prefix = f"tkworst-{uuid.uuid4().hex[:8]}"
        stores["redis"] = lambda clock: tk.RedisStore(client, prefix=prefix)
    names = list(scenarios(next(iter(stores.values()))))
    print(f"{'request, ms: median (slowest)':<66}" + "".join(f"{s:>20}" for s in stores))
    table = {s: scenarios(f) for s, f in stores.items()}
    try:
        for name in names:
            cells = []
            for s in stores:
                runs = sorted(table[s][name]() for _ in range(opts.reps))
                cells.append(f"{runs[len(runs) // 2]:>9.2f} ({runs[-1]:.1f}) ms")
            print(f"{name:<66}" + "".join(f"{c:>20}" for c in cells), flush=True)
    finally:
        if opts.redis:
            for k in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(k)
        if opts.postgres and pg:
            pg[0].drop_table()
            for store in pg:
                store.close()


if __name__ == "__main__":
    main()
