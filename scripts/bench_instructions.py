#!/usr/bin/env python3
"""Instructions per embedded check, counted by callgrind: ``Limiter(Gcra).check`` beside its ceiling, a
pure-Python GCRA on a dict returning the same Decision (``throttlekit._bench.python_gcra``), and beside
the lupa crossing floor (``throttlekit._bench.lupa_floor``: the same call into Lua on a function that
computes nothing), which shows how much of the gap is the crossing itself.

An instruction count does not move with the machine's load (a timed ratio on a shared 2-core machine
swings by 0.2 and more), so this is the figure to compare before and after a change to the hot path.
Each contender runs in a fresh process under ``valgrind --tool=callgrind`` twice, with ``--small`` and
``--large`` checks after a warm-up; the difference over ``large - small`` cancels start-up and exit.
Both runs hash strings with the same seed (``PYTHONHASHSEED=0``): with a random seed each, start-up's
dict lookups (imports, class creation) differ between the two and leave thousands of instructions of
noise per decision in a Postgres figure (``large - small`` is only 500 decisions there).

Usage: ``python scripts/bench_instructions.py [--small 2000] [--large 12000]`` (needs valgrind:
``apt-get install -y valgrind``).

With ``--redis-url URL`` it counts the client side of a Redis check instead (gcra; Redis' own work is
another process and is not counted): ``Limiter.check`` on a ``RedisStore`` beside the raw socket + hiredis
loop sending the same EVALSHA bytes and the floor of any Python client answering the same API (the key
framed per call, the public ``Decision``: ``throttlekit._bench_redis.least_client``), and
``check_many(100)`` per decision beside the same 100 commands in one write (``tk bench``'s Redis
ceilings), with ``--small 1000 --large 5000`` by default.

With ``--postgres-url URL`` it counts one Postgres decision instead (``synchronous_commit=off``, 1,000
keys, every call writes): the sync ``Limiter(Gcra).check`` on a ``PostgresStore`` beside its ceiling, the
same two simple-query exchanges sent by raw psycopg (``bench_stores.py``'s ``--pg-ceiling`` loop) and by
raw libpq on the store's own sync transport (``_pgconn.Link``: one ``poll`` object per connection); the
asyncio ``AsyncLimiter.check`` (the server's) beside the same exchanges sent by raw libpq on one socket
the loop watches (the store's own asyncio transport, ``_pgconn.AsyncLink``), and the same on psycopg's
``AsyncConnection`` and its own wait as a reference, with ``--small 100 --large 600`` by default. Only this process's instructions are counted (the Postgres
server's work is not), so the figure is the client CPU per decision, independent of the load.

With ``--capture`` it counts what decision capture adds to the door's inline Check on the memory store
(``scripts/bench_capture.py``'s services and keys): no capture, a no-op sink on the tap, capture
counts-only and tenant-scoped.

With ``--server`` it splits a gRPC Check on the memory store into the server's own pieces, counted in one
process and one thread without gRPC (gRPC's own work is the same in our server and in
``scripts/bench_grpc.py``'s echoes, whose multi-threaded counts move ~10% between runs): the echo's
handler (a coroutine answering fixed bytes) and the embedded-decision echo's (that coroutine running
``Limiter(FixedWindow).check`` on a ``MemoryStore``) beside our door's ``check_bytes`` on the
benchmark's policy, without and with the Monitor's telemetry hub observing, and the request's decoding.
``--small 2000 --large 7000`` by default.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PG_CONTENDERS = {
    "throttlekit Limiter(Gcra).check, PostgresStore (sync)": "pg-ours",
    "raw psycopg, same statements (ceiling)": "pg-ceiling",
    "raw libpq on one poll object, same statements (the store's own sync transport)": "pg-link",
    "throttlekit AsyncLimiter(Gcra).check, PostgresStore (asyncio, the server's)": "pg-ours-async",
    "raw libpq on one watched socket, same statements (asyncio ceiling)": "pg-ceiling-async",
    "psycopg AsyncConnection and its own wait, same statements (reference)": "pg-psycopg-async",
}

#: Each Postgres contender's ceiling: the sync rows raw psycopg (the issue's), the asyncio rows the asyncio
#: ceiling (raw libpq on one watched socket).
PG_CEILINGS = {
    "pg-ours": "pg-ceiling",
    "pg-ceiling": "pg-ceiling",
    "pg-link": "pg-ceiling",
    "pg-ours-async": "pg-ceiling-async",
    "pg-ceiling-async": "pg-ceiling-async",
    "pg-psycopg-async": "pg-ceiling-async",
}

REDIS_CONTENDERS = {
    "throttlekit Limiter(Gcra).check, RedisStore": "redis-check",
    "raw socket + hiredis, same EVALSHA bytes (ceiling)": "redis-raw",
    "floor: the least Python client (key framed per call, the public Decision)": "redis-least",
    "throttlekit Limiter(Gcra).check_many(100), per decision": "redis-many",
    "raw socket, the same 100 EVALSHAs in one write, per decision (ceiling)": "redis-raw-many",
    "floor: the least Python client, per decision (the batch framed per call, the public Decisions)": (
        "redis-least-many"
    ),
}

#: Each Redis contender's ceiling: the raw socket of the same shape (one check, or the batch of 100).
REDIS_CEILINGS = {
    "redis-check": "redis-raw",
    "redis-raw": "redis-raw",
    "redis-least": "redis-raw",
    "redis-many": "redis-raw-many",
    "redis-raw-many": "redis-raw-many",
    "redis-least-many": "redis-raw-many",
}

CONTENDERS = {
    "throttlekit Limiter(Gcra).check (luajit)": "luajit",
    "throttlekit Limiter(Gcra).check (lua51)": "lua51",
    "lupa crossing floor: a Lua function answering constants (same call shape, same Decision)": "floor",
    "pure-Python GCRA on a dict (same Decision)": "python",
}


def run_pg(kind: str, n: int, url: str, table: str) -> None:
    """The measured process for ``--postgres-url``: warm up, then ``n`` decisions over 1,000 keys."""
    sys.path.insert(0, str(Path(__file__).parent))
    import psycopg
    from bench_stores import STRATEGY, _pg_ceiling_decide, _pg_link_ceiling_decide

    from throttlekit import Limiter
    from throttlekit.stores import _pgconn as pgc
    from throttlekit.stores.postgres import PostgresStore

    keys = [f"{kind}:k{i}" for i in range(1000)]
    if kind.endswith("-async"):
        _run_pg_async(kind, n, url, table, keys)
        return
    if kind == "pg-ours":
        store = PostgresStore(url, table=table, sweep_interval_ms=0, synchronous_commit="off")
        check = Limiter(STRATEGY, store=store).check
    else:
        if kind == "pg-link":
            conn: Any = pgc.connect(url, {"options": "-c synchronous_commit=off"})
            decide = _pg_link_ceiling_decide(table)
        else:
            conn = psycopg.connect(url, autocommit=True, options="-c synchronous_commit=off")
            decide = _pg_ceiling_decide("simple", table)

        def check(key: str) -> None:
            decide(conn, key)

    for i in range(200):
        check(keys[i % 1000])
    for i in range(n):
        check(keys[(200 + i) % 1000])


def _run_pg_async(kind: str, n: int, url: str, table: str, keys: list[str]) -> None:
    """``run_pg`` on one asyncio loop, one task: the asyncio store (``AsyncLimiter``) or its ceiling."""
    import asyncio

    import psycopg
    from bench_stores import STRATEGY, _pg_async_ceiling_decide, _pg_psycopg_async_decide

    from throttlekit import AsyncLimiter
    from throttlekit.stores import _pgconn as pgc
    from throttlekit.stores.postgres import PostgresStore

    async def main() -> None:
        if kind == "pg-ours-async":
            store = PostgresStore(url, table=table, sweep_interval_ms=0, synchronous_commit="off")
            check = AsyncLimiter(STRATEGY, store=store).check
        else:
            options = "-c synchronous_commit=off"
            if kind == "pg-ceiling-async":
                conn = await pgc.aconnect(url, {"options": options}, 5.0)
                decide = _pg_async_ceiling_decide(table)
            else:
                conn = await psycopg.AsyncConnection.connect(url, autocommit=True, options=options)
                decide = _pg_psycopg_async_decide(table)

            async def check(key: str) -> None:
                await decide(conn, key)

        for i in range(200):
            await check(keys[i % 1000])
        for i in range(n):
            await check(keys[(200 + i) % 1000])

    asyncio.run(main())


def run_redis(kind: str, n: int, url: str) -> None:
    """The measured process for ``--redis-url``: warm up, then ``n`` decisions (key prefix ``url``'s)."""
    from throttlekit import Gcra, Limiter
    from throttlekit._bench_redis import (
        _loop_check,
        _loop_least,
        _loop_least_many,
        _many,
        _raw_batch,
        _raw_one,
        _raw_socket,
        least_client,
        least_client_many,
        raw_command,
    )
    from throttlekit.stores import open_sync
    from throttlekit.stores._redisconn import redis_options

    strategy = Gcra(1_000_000, "1s")
    opts = redis_options(url)
    keys = [f"{kind}-{i}" for i in range(100)]
    Limiter(strategy, store=open_sync(url)).check(f"{kind}-load")  # the script is loaded for every kind
    if kind == "redis-least":
        sock, reader = _raw_socket(opts)
        run = _loop_least(least_client(sock, reader, strategy, opts.prefix), kind)
    elif kind == "redis-least-many":
        sock, reader = _raw_socket(opts)
        run = _loop_least_many(least_client_many(sock, reader, strategy, opts.prefix), keys)
    elif kind in ("redis-raw", "redis-raw-many"):
        sock, reader = _raw_socket(opts)
        run = (
            _raw_one(sock, reader, raw_command(strategy, f"{opts.prefix}:{kind}"))
            if kind == "redis-raw"
            else _raw_batch(
                sock, reader, b"".join(raw_command(strategy, f"{opts.prefix}:{k}") for k in keys), 100
            )
        )
    else:
        limiter = Limiter(strategy, store=open_sync(url))
        run = _loop_check(limiter, kind) if kind == "redis-check" else _many(limiter, keys)
    run(500)
    run(n)


SERVER_CONTENDERS = {
    "the echo's handler: a coroutine answering fixed bytes": "srv-echo",
    "the embedded-decision echo's handler: that coroutine running Limiter(FixedWindow).check": "srv-embedded",
    "decoding the CheckRequest (the door's deserializer)": "srv-decode",
    "our Check, no observer: the door's check_bytes (validation, the bound decision, the encoder)": "srv-door",
    "our Check as served by default: the same, the Monitor's telemetry hub observing": "srv-door-hub",
    "our Check as served by default, with decoding the request": "srv-full-hub",
}


CAPTURE_CONTENDERS = {
    "capture off (the untapped Check)": "cap-off",
    "a no-op sink on the tap (the tap's own cost for a sink)": "cap-sink",
    "capture counts-only": "cap-counts",
    "capture tenant-scoped, hmac": "cap-tenant",
}


def run_capture(kind: str, n: int) -> None:
    """The measured process for ``--capture``: ``n`` inline Checks over 5,000 rotating keys on
    ``scripts/bench_capture.py``'s services (the same policy, rows and keys), the rings drained at the end."""
    from bench_capture import HMAC, TENANT, _noop_sink, _service

    if kind == "cap-sink":
        svc, observer = _noop_sink()
    else:
        svc, observer = _service({"cap-counts": HMAC, "cap-tenant": TENANT}.get(kind))
    check = svc.policy("api").check_reply
    keys = [f"team-{i % 50}:user-{i}" for i in range(5000)]
    for i in range(6000):
        check(keys[i % 5000], 1)
    for i in range(n):
        check(keys[i % 5000], 1)
    if observer is not None:
        observer.recorder.drain()


def run_server(kind: str, n: int) -> None:
    """The measured process for ``--server``: ``n`` Checks of one hot key through one piece."""
    import asyncio

    from throttlekit import FixedWindow, Limiter, MemoryStore
    from throttlekit._proto import throttlekit_pb2 as pb
    from throttlekit.server._door import RateLimiterDoor, _decoder
    from throttlekit.server._service import create_rate_limiter_service_from_config
    from throttlekit.server._telemetry import TelemetryHub

    limit = 10**15  # scripts/bench_grpc.py's policy: never denies within a run
    service = create_rate_limiter_service_from_config(
        f"limiters:\n  bench: {{ strategy: fixedWindow, limit: {limit}, period: 1d }}\n", store=MemoryStore()
    )
    if kind.endswith("-hub"):
        TelemetryHub(backend="memory").attach(service)
    door = RateLimiterDoor(service)
    raw = pb.CheckRequest(policy="bench", key="hot", cost=1).SerializeToString()
    decode = _decoder(pb.CheckRequest)
    answer = b"\n\x08\x08\x01\x10\x01"
    embedded = Limiter(FixedWindow(limit, "1d"), store=MemoryStore()).check

    async def echo(request: object, context: object) -> bytes:
        return answer

    async def embedded_echo(request: object, context: object) -> bytes:
        embedded("hot", 1)
        return answer

    async def main(calls: int) -> None:
        if kind == "srv-decode":
            for _ in range(calls):
                decode(raw)
            return
        handler = {"srv-echo": echo, "srv-embedded": embedded_echo}.get(kind, door.check_bytes)
        request = decode(raw)
        if kind == "srv-full-hub":
            for _ in range(calls):
                await handler(decode(raw), None)
        else:
            for _ in range(calls):
                await handler(request, None)

    asyncio.run(main(2000))
    asyncio.run(main(n))


def run_checks(kind: str, n: int) -> None:
    """The measured process: warm up, then ``n`` checks of one hot key."""
    from throttlekit import Gcra, Limiter, MemoryStore
    from throttlekit._bench import lupa_floor, python_gcra

    strategy = Gcra(1_000_000, "1s")
    if kind == "python":
        check = python_gcra(strategy)
    elif kind == "floor":
        check = lupa_floor("luajit")
    else:
        check = Limiter(strategy, store=MemoryStore(max_keys=1000, runtime=kind)).check
    for _ in range(3000):
        check("bench-gcra")
    for _ in range(n):
        check("bench-gcra")


def instructions(kind: str, n: int, *extra: str) -> int:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--run",
                kind,
                str(n),
                *extra,
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        text = out.read_text(errors="replace")
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("summary:"))


def per_call(contenders: dict[str, str], small: int, large: int, *extra: str) -> dict[str, float]:
    """Instructions per call of each contender (``name -> kind``): ``large - small`` calls, each count
    from a fresh process (:func:`instructions`), with a line of progress per contender."""
    per: dict[str, float] = {}
    for name, kind in contenders.items():
        print(f"{name} ...", file=sys.stderr, flush=True)
        per[name] = (instructions(kind, large, *extra) - instructions(kind, small, *extra)) / (large - small)
    return per


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A markdown table under ``title``: the first column left-aligned, the others right-aligned."""
    print(f"\n{title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|---|" + "--:|" * (len(columns) - 1))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--run", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--pg", nargs=2, metavar=("URL", "TABLE"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--small",
        type=int,
        default=None,
        help="default 2000 (1000 with --redis-url, 100 with --postgres-url)",
    )
    ap.add_argument(
        "--large",
        type=int,
        default=None,
        help="default 12000 (5000 with --redis-url, 600 with --postgres-url)",
    )
    ap.add_argument("--redis-url", help="count the client side of a Redis check and its raw-socket ceilings")
    ap.add_argument("--postgres-url", help="count a sync Postgres decision and its raw-psycopg ceiling")
    ap.add_argument("--server", action="store_true", help="split a gRPC Check on memory into its pieces")
    ap.add_argument("--capture", action="store_true", help="what decision capture adds to an inline Check")
    args = ap.parse_args()
    if args.run:
        if args.run[0].startswith("srv-"):
            run_server(args.run[0], int(args.run[1]))
        elif args.run[0].startswith("cap-"):
            run_capture(args.run[0], int(args.run[1]))
        elif args.pg:
            run_pg(args.run[0], int(args.run[1]), *args.pg)
        elif args.redis_url:
            run_redis(args.run[0], int(args.run[1]), args.redis_url)
        else:
            run_checks(args.run[0], int(args.run[1]))
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind: apt-get install -y valgrind")
    if args.redis_url:
        return _redis(args.redis_url, args.small or 1000, args.large or 5000)
    if args.postgres_url:
        return _postgres(args.postgres_url, args.small or 100, args.large or 600)
    if args.server:
        return _server(args.small or 2000, args.large or 7000)
    if args.capture:
        return _capture(args.small or 2000, args.large or 12000)
    args.small, args.large = args.small or 2000, args.large or 12000
    per = per_call(CONTENDERS, args.small, args.large)
    ceiling = per["pure-Python GCRA on a dict (same Decision)"]
    print_table(
        f"Instructions per check (callgrind; {args.large} - {args.small} checks)",
        ("contender", "instructions per check", "ratio (ceiling/ours)"),
        ((name, f"{value:,.0f}", f"{ceiling / value:.2f}x") for name, value in per.items()),
    )
    return 0


def _server(small: int, large: int) -> int:
    per = per_call(SERVER_CONTENDERS, small, large)
    _echo, embedded, _decode, door, hub, full = per.values()
    print_table(
        f"A gRPC Check on memory, the server's own pieces (callgrind, one thread; {large} - {small})",
        ("piece", "instructions per Check"),
        ((name, f"{value:,.0f}") for name, value in per.items()),
    )
    print(
        f"\nBeyond the embedded-decision echo's handler: {door - embedded:+,.0f} without an observer, "
        f"{hub - embedded:+,.0f} with the hub (of which the hub {hub - door:,.0f}), "
        f"{full - embedded:+,.0f} with decoding (the echo's handler takes raw bytes)."
    )
    return 0


def _capture(small: int, large: int) -> int:
    per = per_call(CAPTURE_CONTENDERS, small, large)
    base = per["capture off (the untapped Check)"]
    print_table(
        f"What capture adds to an inline Check on memory (callgrind; {large} - {small} Checks)",
        ("path", "instructions per Check", "added"),
        ((name, f"{value:,.0f}", f"{value - base:+,.0f}") for name, value in per.items()),
    )
    return 0


def _redis(url: str, small: int, large: int) -> int:
    import uuid

    from throttlekit.stores import open_sync

    sep = "&" if "?" in url else "?"
    url = f"{url}{sep}prefix=tk-instr-{uuid.uuid4().hex[:8]}"
    try:
        per = per_call(REDIS_CONTENDERS, small, large, "--redis-url", url)
    finally:
        store = open_sync(url)
        for kind in REDIS_CONTENDERS.values():
            store.delete(f"{store.prefix}:{kind}")
            for i in range(100):
                store.delete(f"{store.prefix}:{kind}-{i}")
        store.close()
    print_table(
        f"Client instructions per Redis decision (callgrind; {large} - {small} decisions, gcra)",
        ("contender", "instructions per decision", "ratio (ceiling/ours)"),
        (_beside(per, name, kind, REDIS_CEILINGS) for name, kind in REDIS_CONTENDERS.items()),
    )
    return 0


def _postgres(url: str, small: int, large: int) -> int:
    import uuid

    from throttlekit.stores.postgres import PostgresStore

    table = f"tk_instr_{uuid.uuid4().hex[:8]}"
    try:
        per = per_call(PG_CONTENDERS, small, large, "--pg", url, table)
    finally:
        store = PostgresStore(url, table=table, sweep_interval_ms=0)
        store.drop_table()
        store.close()
    print_table(
        f"Instructions per Postgres decision, client side (callgrind; {large} - {small} decisions, "
        "synchronous_commit=off; each asyncio row beside the asyncio ceiling)",
        ("contender", "instructions per decision", "ratio (ceiling/ours)"),
        (_beside(per, name, kind, PG_CEILINGS) for name, kind in PG_CONTENDERS.items()),
    )
    return 0


def _beside(per: dict[str, float], name: str, kind: str, ceilings: dict[str, str]) -> tuple[str, str, str]:
    """A row: the contender, its count and its ratio to its ceiling (``ceilings``: kind -> ceiling kind)."""
    by_kind = {k: n for n, k in {**PG_CONTENDERS, **REDIS_CONTENDERS}.items()}
    ceiling = per[by_kind[ceilings[kind]]]
    return name, f"{per[name]:,.0f}", f"{ceiling / per[name]:.2f}x"


if __name__ == "__main__":
    raise SystemExit(main())
