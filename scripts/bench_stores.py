"""Benchmark gcra Check on every store from the Python API: decisions/s, p50/p99, round trips per decision.

    /tmp/venv/bin/python scripts/bench_stores.py [--seconds 3] [--stores memory,redis,postgres,dynamodb]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/0]

With ``--pg-ceiling`` it instead measures one Postgres decision (sync ``Limiter.check``, one process, gcra)
beside its ceiling, the very same statements sent by raw psycopg (libpq's simple-query exchange, a fixed
JSON state instead of the Lua), interleaved round by round, with ``synchronous_commit`` on (the default)
and off: each row prints decisions/s (median over ``--rounds``), the ratio to the ceiling and its spread,
and the client CPU per decision of both sides (``time.process_time`` of this process: the server's work
and other processes' load stay out of it, so it is the robust figure on a shared machine) with its
ratio; a second row per setting runs the asyncio store (``AsyncLimiter``, one task) against the same
statements sent by raw libpq on one socket the loop watches (the store's own asyncio transport, the
cheapest asyncio wait known here), and a third against them on a psycopg ``AsyncConnection`` with
psycopg's own wait (a reference: what psycopg's asyncio layer would cost).
The sync rows also run a floor in the same rounds: the ceiling's statements with the state read handed
to the gcra transform in lupa and its new state written (every decision here is computed by the Lua).
The raw connections connect within 2 s and every wait of the ceilings and the floor is bounded by the
store's default op timeout (5 s, passed to psycopg's wait as the store passes it), so a frozen Postgres
stops the run with psycopg's timeout error instead of hanging it.
``--ceiling pipeline`` measures against the statements of the earlier pipeline-mode store instead
(to rerun the "before" row on an older checkout: ``PYTHONPATH=<old checkout> python scripts/...``).

With ``--grpc`` the same Check also goes through the gRPC door: one server process per store, 1 and 4
client processes with 8 calls in flight each (round trips are the server's, as in the rows above).

Each client is its own **process** with its own store (as separate app instances would be), running the
synchronous API in a closed loop on its own keys (1,000 keys per client, so no lock contention is measured
here: the fleet test covers that). Rows for 1 and 4 concurrent clients, plus an asyncio row (4 tasks on one
loop, one store) for the snapshot stores. DynamoDB runs on moto (``moto_server`` on a loopback port): a
correctness setup, not a speed claim.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import throttlekit as tk
from throttlekit.stores import _pgconn as pgc

AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
STRATEGY = tk.Gcra(1_000_000, 1000, burst=1_000_000)  # always admits: every call writes state
#: Seconds any raw-psycopg wait of the Postgres ceilings and floor may last (the store's default
#: ``op_timeout_s``; they wait with it as the store does, so a frozen server stops the run, not hangs it).
WAIT_S = 5.0


def make_store(name: str, opts: dict[str, Any]) -> Any:
    if name == "memory":
        return tk.MemoryStore()
    if name == "redis":
        return tk.RedisStore(url=opts["redis_url"], prefix=opts["prefix"])
    if name == "postgres":
        from throttlekit.stores.postgres import PostgresStore

        return PostgresStore(
            opts["postgres_url"], table=opts["table"], prefix=opts["prefix"], sweep_interval_ms=0
        )
    from throttlekit.stores.dynamodb import DynamoDBStore

    return DynamoDBStore(
        opts["ddb_table"], region="us-east-1", endpoint=opts["endpoint"], prefix=opts["prefix"]
    )


def _client(name: str, opts: dict[str, Any], seconds: float, idx: int, out: Any) -> None:
    os.environ.update(AWS)
    store = make_store(name, opts)
    lim = tk.Limiter(STRATEGY, store=store)
    keys = [f"c{idx}-k{i}" for i in range(1000)]
    for k in keys[:20]:  # warm up: connections, table, prepared statements
        lim.check(k)
    trips0 = getattr(store, "round_trips", None)
    lat: list[float] = []
    n = 0
    perf = time.perf_counter
    end = perf() + seconds
    while True:
        t = perf()
        if t >= end:
            break
        lim.check(keys[n % 1000])
        lat.append(perf() - t)
        n += 1
    trips = None if trips0 is None else (store.round_trips - trips0) / max(1, n)
    store.close()
    out.put((n, lat, trips))


def run_processes(name: str, opts: dict[str, Any], clients: int, seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_client, args=(name, opts, seconds, i, q)) for i in range(clients)]
    for p in procs:
        p.start()
    results = [q.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    n = sum(r[0] for r in results)
    lat = sorted(x for r in results for x in r[1])
    trips = [r[2] for r in results if r[2] is not None]
    return _row(
        name, f"{clients} proc", n, seconds, lat, statistics.mean(trips) if trips else _static_trips(name)
    )


def run_async(name: str, opts: dict[str, Any], tasks: int, seconds: float) -> dict[str, Any]:
    store = make_store(name, opts)
    lim = tk.AsyncLimiter(STRATEGY, store=store)
    lat: list[float] = []
    perf = time.perf_counter

    async def worker(i: int, end: float) -> int:
        n = 0
        while perf() < end:
            t = perf()
            await lim.check(f"a{i}-k{n % 1000}")
            lat.append(perf() - t)
            n += 1
        return n

    async def main() -> tuple[int, float]:
        for i in range(tasks):
            await lim.check(f"a{i}-k0")
        trips0 = store.round_trips
        counts = await asyncio.gather(*(worker(i, perf() + seconds) for i in range(tasks)))
        trips = (store.round_trips - trips0) / max(1, sum(counts))
        await store.aclose()
        return sum(counts), trips

    n, trips = asyncio.run(main())
    store.close()
    return _row(name, f"{tasks} async", n, seconds, sorted(lat), trips)


GRPC_CONFIG = "version: 1\nlimiters:\n  g: { strategy: gcra, limit: 1000000, period: 1s, burst: 1000000 }\n"


def _grpc_client(port: int, seconds: float, inflight: int, idx: int, out: Any) -> None:
    import grpc

    from throttlekit._proto import throttlekit_pb2 as pb
    from throttlekit._proto import throttlekit_pb2_grpc as pb_grpc

    async def main() -> tuple[int, list[float]]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.RateLimiterStub(ch)
            await stub.Check(pb.CheckRequest(policy="g", key="warm", cost=1), timeout=10)
            lat: list[float] = []
            perf = time.perf_counter
            end = perf() + seconds

            async def worker(w: int) -> int:
                n = 0
                while perf() < end:
                    t = perf()
                    await stub.Check(
                        pb.CheckRequest(policy="g", key=f"c{idx}-{w}-{n % 1000}", cost=1), timeout=10
                    )
                    lat.append(perf() - t)
                    n += 1
                return n

            counts = await asyncio.gather(*(worker(w) for w in range(inflight)))
            return sum(counts), lat

    out.put(asyncio.run(main()))


def run_grpc(name: str, opts: dict[str, Any], clients: int, seconds: float, tmp: Path) -> dict[str, Any]:
    """One server process on ``name``; ``clients`` client processes x 8 calls in flight each."""
    cfg = tmp / "bench.yaml"
    cfg.write_text(GRPC_CONFIG)
    flags = {
        "memory": ["--store", "memory"],
        "redis": ["--redis", opts["redis_url"], "--redis-prefix", opts["prefix"]],
        "postgres": ["--postgres-url", opts["postgres_url"], "--postgres-table", opts["table"],
                     "--postgres-prefix", opts["prefix"]],
        "dynamodb": ["--dynamodb-table", opts["ddb_table"], "--dynamodb-region", "us-east-1",
                     "--dynamodb-endpoint", opts.get("endpoint", ""), "--dynamodb-prefix", opts["prefix"]],
    }[name]  # fmt: skip
    code = "import sys; from throttlekit.cli import server_main; sys.exit(server_main(sys.argv[1:]))"
    srv = subprocess.Popen([sys.executable, "-c", code, "serve", "-c", str(cfg), "-p", "0", *flags],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        line = srv.stdout.readline() if srv.stdout else ""
        port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        procs = [ctx.Process(target=_grpc_client, args=(port, seconds, 8, i, q)) for i in range(clients)]
        for p in procs:
            p.start()
        results = [q.get(timeout=seconds + 120) for _ in procs]
        for p in procs:
            p.join()
    finally:
        srv.terminate()
        srv.wait()
        if srv.stdout:
            srv.stdout.close()
    n = sum(r[0] for r in results)
    lat = sorted(x for r in results for x in r[1])
    return _row(name, f"gRPC {clients}x8", n, seconds, lat, _static_trips(name))


def _static_trips(name: str) -> float:
    """Server-to-store round trips per consuming decision (Redis: at most one, pipelined per loop tick)."""
    return {"memory": 0.0, "redis": 1.0, "postgres": 2.0, "dynamodb": 2.0}[name]


def _row(store: str, clients: str, n: int, seconds: float, lat: list[float], trips: float) -> dict[str, Any]:
    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6 if lat else float("nan")

    return {
        "store": store,
        "clients": clients,
        "dps": n / seconds,
        "p50": pct(0.5),
        "p99": pct(0.99),
        "trips": trips,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen([*cmd, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **AWS})  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=0.5).close()
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def _pg_statements(table: str) -> tuple[bytes, bytes]:
    """The two simple-query messages of a one-key decision on ``table``, as the store sends them, for the
    raw ceilings and the floor: ``read % (k, k)`` (BEGIN, the key's advisory lock, its row) and ``write
    % (k, state, expires_at)`` (the upsert, COMMIT), ``k`` the key's SQL literal, ``state`` bytes."""
    t = b'"' + table.encode() + b'"'
    read = (b"BEGIN; SELECT pg_advisory_xact_lock(hashtextextended(%b, 0)); "
            b"SELECT key, state, expires_at FROM " + t + b" WHERE key = %b")  # fmt: skip
    write = (b"INSERT INTO " + t + b" (key, state, expires_at) VALUES (%b, '%b', %d) ON CONFLICT (key) DO UPDATE "
             b"SET state = EXCLUDED.state, expires_at = EXCLUDED.expires_at; COMMIT")  # fmt: skip
    return read, write


def _pg_literal(key: str) -> bytes:
    return b"'" + key.replace("'", "''").encode() + b"'"


def _pg_ceiling_decide(mode: str, table: str) -> Any:
    """A closed-loop decision by raw psycopg with the store's statements; ``mode`` "simple" (two simple-query
    exchanges: BEGIN + lock + read, then upsert + COMMIT) or "pipeline" (the pipeline-mode statements).
    It writes what a gcra decision writes (the TAT as state, a deadline that moves), so the server does the
    same work (an update that changes the indexed ``expires_at`` cannot be HOT)."""
    from psycopg import generators

    if mode == "simple":
        read, write = _pg_statements(table)

        def decide(conn: Any, key: str) -> None:
            now = int(time.time() * 1000)
            k = _pg_literal(key)
            pg = conn.pgconn
            pg.send_query(read % (k, k))
            res = conn.wait(generators.execute(pg), timeout=WAIT_S)
            _ = res[-1].get_value(0, 1) if res[-1].ntuples else None  # read the state, as the store does
            pg.send_query(write % (k, b"%d" % now, now + 1))
            conn.wait(generators.execute(pg), timeout=WAIT_S)

        return decide
    select = f'SELECT key, state, expires_at FROM "{table}" WHERE key = %s AND expires_at >= %s'
    upsert = (f'INSERT INTO "{table}" (key, state, expires_at) VALUES (%s, %s, %s) ON CONFLICT (key) DO UPDATE '
              "SET state = EXCLUDED.state, expires_at = EXCLUDED.expires_at")  # fmt: skip

    def decide_pipeline(conn: Any, key: str) -> None:
        now = int(time.time() * 1000)
        with conn.pipeline() as p:
            conn.execute("BEGIN")
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])
            cur = conn.execute(select, [key, now])
            p.sync()
            cur.fetchall()
        with conn.pipeline():
            conn.execute(upsert, [key, str(now), now + 1])
            conn.execute("COMMIT")

    return decide_pipeline


def _pg_link_ceiling_decide(table: str) -> Any:
    """The ceiling's two exchanges sent on a ``throttlekit.stores._pgconn.Link`` (raw libpq, one ``poll``
    object per connection: the store's own sync transport, cheaper than psycopg's wait). Call it with a
    ``Link``."""
    read, write = _pg_statements(table)

    def decide(link: Any, key: str) -> None:
        now = int(time.time() * 1000)
        k = _pg_literal(key)
        res = link.exchange(read % (k, k), WAIT_S)
        _ = res.get_value(0, 1) if res.ntuples else None
        link.exchange(write % (k, b"%d" % now, now + 1), WAIT_S)

    return decide


def _pg_floor_decide(table: str) -> Any:
    """The floor of any store that computes the decision in Lua, as the design requires: the ceiling's two
    simple-query exchanges (sent on a ``throttlekit.stores._pgconn.Link``, the store's own transport, the
    cheapest sync wait known here: call it with a ``Link``), with the state read passed to the same gcra transform in lupa
    (one call: the executor's one-key step, state decoded in and encoded out) and the Lua's new state
    written, answering the public Decision. What it lacks beside ours: the store's per-key queue, pool,
    retries and errors, the Limiter's validation and clock. On a 2-core machine the Lua call costs far
    more here than in a hot loop (the client sleeps in poll twice per decision, and comes back to cold
    caches), so this floor sits well below the raw ceiling."""
    from throttlekit._loader import load_manifest
    from throttlekit._types import decision_of
    from throttlekit.stores._pgsql import record1
    from throttlekit.stores._snapshot import NEVER, SnapshotExecutor

    step = SnapshotExecutor().bind1(load_manifest()[STRATEGY.check_transform], tuple(STRATEGY.params))
    read, write = _pg_statements(table)

    def decide(link: Any, key: str) -> Any:
        k = _pg_literal(key)
        state, expires = record1(link.exchange(read % (k, k), WAIT_S))
        now = int(time.time() * 1000)
        reply, out = step(key, state, expires, now, now, (1,))
        st, exp = out  # gcra always writes (the benchmark's policy admits every call)
        link.exchange(write % (k, st.encode(), NEVER if exp is None else exp), WAIT_S)
        return decision_of(reply)

    return decide


def _pg_async_ceiling_decide(table: str) -> Any:
    """The asyncio twin of ``_pg_ceiling_decide("simple")``: the same two exchanges, sent by raw libpq on
    one socket the loop watches for good (``throttlekit.stores._pgconn.AsyncLink``, the cheapest asyncio
    wait known here: no pool, no Lua, no Limiter). Call it with an ``AsyncLink``."""
    read, write = _pg_statements(table)

    async def decide(link: Any, key: str) -> None:
        now = int(time.time() * 1000)
        k = _pg_literal(key)
        res = await link.exchange(read % (k, k), WAIT_S)
        _ = res.get_value(0, 1) if res.ntuples else None
        await link.exchange(write % (k, b"%d" % now, now + 1), WAIT_S)

    return decide


def _pg_psycopg_async_decide(table: str) -> Any:
    """The same two exchanges on a psycopg ``AsyncConnection`` and its own wait (a reference beside the
    asyncio ceiling: what psycopg's asyncio layer costs)."""
    from psycopg import generators

    read, write = _pg_statements(table)

    async def decide(conn: Any, key: str) -> None:
        now = int(time.time() * 1000)
        k = _pg_literal(key)
        pg = conn.pgconn
        pg.send_query(read % (k, k))
        res = await conn.wait(generators.execute(pg), timeout=WAIT_S)
        _ = res[-1].get_value(0, 1) if res[-1].ntuples else None
        pg.send_query(write % (k, b"%d" % now, now + 1))
        await conn.wait(generators.execute(pg), timeout=WAIT_S)

    return decide


async def _aloop(call: Any, keys: list[str], end: float) -> int:
    """``await call(key)`` over ``keys`` in a closed loop until ``end`` (perf_counter); the count."""
    n, perf = 0, time.perf_counter
    while perf() < end:
        await call(keys[n % 1000])
        n += 1
    return n


def _pg_row(
    label: str,
    ours: list[tuple[float, float]],
    ceiling: list[tuple[float, float]],
    floor: list[tuple[float, float]] | None = None,
) -> str:
    """One table row from per-round (decisions/s, client CPU us per decision) of both sides, and of the
    floor (:func:`_pg_floor_decide`) when measured: its rate, its ratio to the ceiling and ours to it."""
    ratios = sorted(o[0] / c[0] for o, c in zip(ours, ceiling))
    mo, mc = statistics.median(o[0] for o in ours), statistics.median(c[0] for c in ceiling)
    co, cc = statistics.median(o[1] for o in ours), statistics.median(c[1] for c in ceiling)
    cpu_ratios = sorted(c[1] / o[1] for o, c in zip(ours, ceiling))
    tail = "| | | |"
    if floor:
        fr = sorted(f[0] / c[0] for f, c in zip(floor, ceiling))
        of = sorted(o[0] / f[0] for o, f in zip(ours, floor))
        tail = (f"| {statistics.median(f[0] for f in floor):,.0f} ({statistics.median(f[1] for f in floor):.0f} us CPU) "
                f"| {statistics.median(fr):.2f}x [{fr[0]:.2f}-{fr[-1]:.2f}] | {statistics.median(of):.2f}x [{of[0]:.2f}-{of[-1]:.2f}] |")  # fmt: skip
    return (f"| {label} | {mo:,.0f} | {mc:,.0f} | {statistics.median(ratios):.2f}x | {ratios[0]:.2f}-{ratios[-1]:.2f} "
            f"| {co:.0f} | {cc:.0f} | {statistics.median(cpu_ratios):.2f}x | {cpu_ratios[0]:.2f}-{cpu_ratios[-1]:.2f} {tail}")  # fmt: skip


def run_pg_ceiling(
    url: str, table: str, prefix: str, rounds: int, seconds: float, mode: str, with_async: bool = True
) -> list[str]:
    """Rows of ours vs the raw-psycopg ceiling, synchronous_commit on and off, interleaved per round:
    decisions/s and client CPU per decision (``time.process_time``: this process only, so the server's
    work and the machine's load stay out of it) of both sides; with ``with_async`` also the asyncio store
    (``AsyncLimiter``, one task) against the same statements on the raw asyncio transport (the ceiling)
    and on a psycopg ``AsyncConnection`` (the reference)."""
    import psycopg

    from throttlekit.stores.postgres import PostgresStore

    out = []
    perf, cpu = time.perf_counter, time.process_time
    for sync_commit in ("on", "off"):
        sep = "&" if "?" in url else "?"
        opts = f"{sep}options=-c%20synchronous_commit%3D{sync_commit}"  # libpq's own URL parameter
        store = PostgresStore(url + opts, table=table, prefix=prefix, sweep_interval_ms=0)
        lim = tk.Limiter(STRATEGY, store=store)
        conn = psycopg.connect(
            url, autocommit=True, connect_timeout=2, options=f"-c synchronous_commit={sync_commit}"
        )
        link = pgc.connect(url, {"connect_timeout": 2, "options": f"-c synchronous_commit={sync_commit}"})
        decide = _pg_ceiling_decide(mode, table)
        floor = _pg_floor_decide(table)
        on_link = _pg_link_ceiling_decide(table)
        keys = [f"k{i}" for i in range(1000)]
        raw_keys = [f"raw:{k}" for k in keys]
        floor_keys = [f"floor:{k}" for k in keys]
        link_keys = [f"link:{k}" for k in keys]
        for i in range(50):  # warm up all: connections, table, plans
            lim.check(keys[i])
            decide(conn, raw_keys[i])
            floor(link, floor_keys[i])
            on_link(link, link_keys[i])
        loop = asyncio.new_event_loop()
        alim = tk.AsyncLimiter(STRATEGY, store=store)
        aconn = alink = None
        adecide, apsycopg = _pg_async_ceiling_decide(table), _pg_psycopg_async_decide(table)
        if with_async:
            alink = loop.run_until_complete(pgc.aconnect(url, {"connect_timeout": 2, "options": f"-c synchronous_commit={sync_commit}"}, 5.0))  # fmt: skip
            aconn = loop.run_until_complete(psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=2, options=f"-c synchronous_commit={sync_commit}"))  # fmt: skip
            for i in range(50):
                loop.run_until_complete(alim.check(keys[i]))
                loop.run_until_complete(adecide(alink, raw_keys[i]))
                loop.run_until_complete(apsycopg(aconn, raw_keys[i]))

        res: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for r in range(rounds):
            for api in ("sync", "async") if with_async else ("sync",):
                for side in (
                    ("ours", "ceiling", "psycopg")
                    if api == "async"
                    else ("ours", "ceiling", "floor", "link")
                    if mode == "simple"
                    else ("ours", "ceiling")
                ):
                    n, c0, t0 = 0, cpu(), perf()
                    if api == "async":
                        if side == "ours":
                            n = loop.run_until_complete(_aloop(alim.check, keys, t0 + seconds))
                        else:
                            raw = (
                                functools.partial(adecide, alink)
                                if side == "ceiling"
                                else functools.partial(apsycopg, aconn)
                            )
                            n = loop.run_until_complete(_aloop(raw, raw_keys, t0 + seconds))
                    else:
                        end = t0 + seconds
                        while perf() < end:
                            if side == "ours":
                                lim.check(keys[n % 1000])
                            elif side == "ceiling":
                                decide(conn, raw_keys[n % 1000])
                            elif side == "floor":
                                floor(link, floor_keys[n % 1000])
                            else:
                                on_link(link, link_keys[n % 1000])
                            n += 1
                    took, used = perf() - t0, cpu() - c0
                    res.setdefault((api, side), []).append((n / took, used / max(1, n) * 1e6))
                o, c = res[(api, "ours")][-1], res[(api, "ceiling")][-1]
                print(f"  postgres {api} synchronous_commit={sync_commit} round {r + 1}/{rounds}: ours {o[0]:,.0f}/s "
                      f"{o[1]:.0f} us CPU, ceiling ({mode}) {c[0]:,.0f}/s {c[1]:.0f} us CPU, ratio {o[0] / c[0]:.2f}"
                      + (f", floor {res[(api, 'floor')][-1][0]:,.0f}/s" if (api, "floor") in res else "")
                      + (f", psycopg's AsyncConnection {res[(api, 'psycopg')][-1][0]:,.0f}/s" if (api, "psycopg") in res else ""),
                      flush=True)  # fmt: skip
        if aconn is not None and alink is not None:
            loop.run_until_complete(aconn.close())
            loop.run_until_complete(alink.close())
        loop.run_until_complete(store.aclose())
        loop.close()
        store.close()
        conn.close()
        link.close()
        out.append(_pg_row(f"Postgres decision, sync, synchronous_commit={sync_commit}",
                           res[("sync", "ours")], res[("sync", "ceiling")], res.get(("sync", "floor"))))  # fmt: skip
        if ("sync", "link") in res:
            out.append(_pg_row(f"the same against the statements on the store's own transport (raw libpq, poll), synchronous_commit={sync_commit}",
                               res[("sync", "ours")], res[("sync", "link")]))  # fmt: skip
        if with_async:
            out.append(_pg_row(f"Postgres decision, asyncio, synchronous_commit={sync_commit}",
                               res[("async", "ours")], res[("async", "ceiling")]))  # fmt: skip
            out.append(_pg_row(f"the same against psycopg's AsyncConnection (reference), synchronous_commit={sync_commit}",
                               res[("async", "ours")], res[("async", "psycopg")]))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--stores", default="memory,redis,postgres,dynamodb")
    ap.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--grpc", action="store_true", help="Also through the gRPC door (one server process).")
    ap.add_argument("--pg-ceiling", action="store_true", help="Postgres decision vs raw psycopg, in rounds.")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ceiling", choices=("simple", "pipeline"), default="simple")
    a = ap.parse_args()
    os.environ.update(AWS)
    run = uuid.uuid4().hex[:8]
    if a.pg_ceiling:
        from throttlekit.stores.postgres import PostgresStore

        table = f"tk_bench_{run}"
        try:
            rows_pg = run_pg_ceiling(a.postgres_url, table, f"bench-{run}", a.rounds, a.seconds, a.ceiling,
                                     with_async=a.ceiling == "simple")  # fmt: skip
        finally:
            s = PostgresStore(a.postgres_url, table=table, sweep_interval_ms=0)
            s.drop_table()
            s.close()
        print(
            "\n| path | ours (decisions/s) | ceiling: same statements, raw psycopg | ratio | spread "
            "| client CPU us/decision: ours | ceiling | CPU ratio (ceiling/ours) | spread "
            "| floor: same statements + the Lua decision (decisions/s) | floor / ceiling | ours / floor |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print("\n".join(rows_pg))
        return
    opts: dict[str, Any] = {"redis_url": a.redis_url, "postgres_url": a.postgres_url, "prefix": f"bench-{run}",
                            "table": f"tk_bench_{run}", "ddb_table": f"tk-bench-{run}"}  # fmt: skip
    moto = None
    rows: list[dict[str, Any]] = []
    try:
        for name in a.stores.split(","):
            if name == "dynamodb":
                moto, opts["endpoint"] = start_moto()
                from throttlekit.stores.dynamodb import create_table, make_client

                create_table(make_client("us-east-1", opts["endpoint"]), opts["ddb_table"])
            for clients in (1, 4):
                rows.append(run_processes(name, opts, clients, a.seconds))
                print(_fmt(rows[-1]), flush=True)
            if name in ("postgres", "dynamodb"):
                rows.append(run_async(name, opts, 4, a.seconds))
                print(_fmt(rows[-1]), flush=True)
            if a.grpc:
                import tempfile

                with tempfile.TemporaryDirectory() as tmp:
                    for clients in (1, 4):
                        rows.append(run_grpc(name, opts, clients, a.seconds, Path(tmp)))
                        print(_fmt(rows[-1]), flush=True)
    finally:
        if "postgres" in a.stores:
            from throttlekit.stores.postgres import PostgresStore

            s = PostgresStore(a.postgres_url, table=opts["table"], sweep_interval_ms=0)
            s.drop_table()
            s.close()
        if moto is not None:
            moto.terminate()
            moto.wait()
    print("\n| store | clients | decisions/s | p50 (us) | p99 (us) | round trips / decision |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        note = " (moto: correctness setup, not a speed claim)" if r["store"] == "dynamodb" else ""
        print(f"| {r['store']}{note} | {r['clients']} | {r['dps']:,.0f} | {r['p50']:,.0f} | {r['p99']:,.0f} "
              f"| {r['trips']:.2f} |")  # fmt: skip


def _fmt(r: dict[str, Any]) -> str:
    return (f"{r['store']:>9} {r['clients']:>8}: {r['dps']:>9,.0f} decisions/s  p50 {r['p50']:>8,.0f} us  "
            f"p99 {r['p99']:>8,.0f} us  {r['trips']:.2f} round trips/decision")  # fmt: skip


if __name__ == "__main__":
    main()
