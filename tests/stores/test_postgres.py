"""Postgres specifics: table creation and identifiers, lazy expiry and the sweep, URL parsing, the JSON
layout in the table, and outages (a dead port, a proxy that dies or freezes mid-load)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import throttlekit as tk
from tests._support.services import Proxy, free_port
from throttlekit.stores import from_url
from throttlekit.stores.postgres import PostgresStore

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg", reason="pip install 'throttlekit-server[postgres]'")


def _rows(url: str, table: str, prefix: str) -> dict[str, tuple[Any, int]]:
    with psycopg.connect(url) as c:
        rows = c.execute(
            f"SELECT key, state, expires_at FROM {table} WHERE key LIKE %s", [prefix + "%"]
        ).fetchall()
    return {k: (json.loads(s), e) for k, s, e in rows}


def test_table_created_on_first_use_with_schema(pg_url: str) -> None:
    table = f"tkt_new_{uuid.uuid4().hex[:8]}"
    s = PostgresStore(pg_url, table=table, sweep_interval_ms=0)
    try:
        s.eval("gcra", ["k"], 0, [1000, 10, 10, 1])
        with psycopg.connect(pg_url) as c:
            cols = c.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_name = %s ORDER BY ordinal_position",
                [table],
            ).fetchall()
            idx = c.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [table]).fetchall()
        assert cols == [("key", "text", "NO"), ("state", "text", "NO"), ("expires_at", "bigint", "NO")]
        assert any("(expires_at)" in d for (d,) in idx)
    finally:
        s.drop_table()
        s.close()


@pytest.mark.parametrize("bad", ["1abc", "a-b", "a;drop table x", "a.b.c", "", "a b", 'x"y'])
def test_table_identifier_is_validated(bad: str) -> None:
    with pytest.raises(tk.ConfigError, match="postgres table must match"):
        PostgresStore("postgresql://postgres@127.0.0.1/test", table=bad)


def test_state_rows_are_upstream_json(pg_url: str, pg_table: str) -> None:
    clock = tk.ManualClock(10_000)
    s = PostgresStore(
        pg_url, table=pg_table, clock=clock, prefix=f"j{uuid.uuid4().hex[:8]}", sweep_interval_ms=0
    )
    try:
        tk.Limiter(tk.TokenBucket(10, 5), store=s, clock=clock).check("tb", 3)
        tk.Limiter(tk.FixedWindow(5, 1000), store=s, clock=clock).check("fw", 2)
        tk.Limiter(tk.SlidingWindow(10, 1000, buckets=4), store=s, clock=clock).check("sw", 2)
        tk.Limiter(tk.SlidingWindowLog(5, 1000), store=s, clock=clock).check("log", 2)
        tk.Limiter(tk.Gcra(10, 1000), store=s, clock=clock).check("g")
        rows = _rows(pg_url, pg_table, s.prefix)
        p = s.prefix + ":"
        assert rows[p + "tb"] == ({"tokens": 7, "last": 10_000}, 12_000)
        assert rows[p + "fw"] == ({"start": 10_000, "count": 2}, 11_000)
        assert rows[p + "sw"] == ({"i": [40, -1, -1, -1, -1], "n": [2, 0, 0, 0, 0]}, 11_250)
        assert rows[p + "log"] == ([10_000, 10_000], 11_000)
        assert rows[p + "g"] == (10_100, 10_100)
    finally:
        s.close()


def test_expired_rows_are_ignored_then_swept(pg_url: str, pg_table: str) -> None:
    clock = tk.ManualClock(0)
    s = PostgresStore(
        pg_url, table=pg_table, clock=clock, prefix=f"x{uuid.uuid4().hex[:8]}", sweep_interval_ms=0
    )
    try:
        lim = tk.Limiter(tk.FixedWindow(1, 1000), store=s, clock=tk.ManualClock(0))
        assert lim.check("a").allowed
        assert len(_rows(pg_url, pg_table, s.prefix)) == 1
        clock.set(1_001)
        assert lim.check("a").allowed  # now_ms still 0: only expiry explains the fresh state
        clock.set(5_000)
        assert s.sweep() >= 1
        assert _rows(pg_url, pg_table, s.prefix) == {}
    finally:
        s.close()


def test_read_only_transforms_never_write(pg_url: str, pg_table: str) -> None:
    s = PostgresStore(pg_url, table=pg_table, prefix=f"r{uuid.uuid4().hex[:8]}", sweep_interval_ms=0)
    try:
        lim = tk.Limiter(tk.Gcra(10, 1000), store=s)
        lim.peek("a")
        lim.forecast("a")
        assert _rows(pg_url, pg_table, s.prefix) == {}
    finally:
        s.close()


def test_from_url(pg_url: str) -> None:
    s = from_url("postgresql://postgres@127.0.0.1:5432/test?table=t1&prefix=P&pool_size=3&sslmode=disable")
    try:
        assert isinstance(s, PostgresStore)
        assert (s.table, s.prefix, s.url) == (
            "t1",
            "P",
            "postgresql://postgres@127.0.0.1:5432/test?sslmode=disable",
        )
    finally:
        s.close()
    with pytest.raises(tk.ConfigError, match="pool_size must be an integer"):
        from_url("postgres://h/db?pool_size=x")


#: A connect timeout far above any scheduling delay: a call that ends well before it was refused at once,
#: not timed out (a loaded machine can delay a refused call by half a second; it cannot by 10 s).
SLOW_CONNECT_S = 30
AT_ONCE_S = 10


def test_dead_port_fails_fast_with_store_error() -> None:
    s = PostgresStore(
        f"postgresql://postgres@127.0.0.1:{free_port()}/test",
        sweep_interval_ms=0,
        connect_timeout_s=SLOW_CONNECT_S,
    )
    try:
        for _ in range(3):
            t0 = time.monotonic()
            with pytest.raises(tk.StoreError):
                s.eval("gcra", ["k"], 0, [1000, 10, 10, 1])
            assert time.monotonic() - t0 < AT_ONCE_S
    finally:
        s.close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy(5432)
    yield p
    p.stop()


def _outage_url(pg_url: str, port: int) -> str:
    return pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")


def test_outage_mid_load_then_recovery(pg_url: str, pg_table: str, proxy: Proxy) -> None:
    s = PostgresStore(_outage_url(pg_url, proxy.port), table=pg_table, prefix=f"o{uuid.uuid4().hex[:8]}",
                      sweep_interval_ms=0, pool_size=4, connect_timeout_s=SLOW_CONNECT_S)  # fmt: skip
    lim = tk.Limiter(tk.FixedWindow(1_000_000, 3_600_000), store=s)
    try:
        for _ in range(50):
            assert lim.check("k").allowed
        proxy.stop()  # the store "dies" mid-load: pooled connections drop, new ones are refused
        worst = 0.0
        for _ in range(20):
            t0 = time.monotonic()
            with pytest.raises(tk.StoreError):
                lim.check("k")
            worst = max(worst, time.monotonic() - t0)
        assert worst < AT_ONCE_S
        proxy.start()  # back: the very next call succeeds and the count carried over
        assert lim.check("k").remaining == 1_000_000 - 51
    finally:
        s.close()


def test_frozen_store_is_bounded_by_the_op_timeout(pg_url: str, pg_table: str, proxy: Proxy) -> None:
    """A peer that accepts bytes and never answers (SIGSTOP'd proxy): sync and async both give up."""
    s = PostgresStore(_outage_url(pg_url, proxy.port), table=pg_table, prefix=f"f{uuid.uuid4().hex[:8]}",
                      sweep_interval_ms=0, op_timeout_s=0.5)  # fmt: skip
    lim = tk.Limiter(tk.Gcra(1000, 1000), store=s)
    try:
        assert lim.check("k").allowed
        assert proxy.proc is not None
        os.kill(proxy.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(tk.StoreError, match="no reply within op_timeout_s"):
                lim.check("k")
            assert time.monotonic() - t0 < 1.5  # op_timeout_s (0.5 s) bounds each network wait

            async def one() -> float:
                t = time.monotonic()
                with pytest.raises(tk.StoreError):
                    await s.aeval("gcra", [s.prefix + ":k"], -1, [1000, 1000, 1000, 1])
                await s.aclose()
                return time.monotonic() - t

            assert asyncio.run(one()) < 1.5
        finally:
            os.kill(proxy.proc.pid, signal.SIGCONT)
    finally:
        s.close()


def test_async_outage_then_recovery(pg_url: str, pg_table: str, proxy: Proxy) -> None:
    s = PostgresStore(_outage_url(pg_url, proxy.port), table=pg_table, prefix=f"a{uuid.uuid4().hex[:8]}",
                      sweep_interval_ms=0, connect_timeout_s=SLOW_CONNECT_S)  # fmt: skip
    lim = tk.AsyncLimiter(tk.FixedWindow(100, 3_600_000), store=s)

    async def main() -> None:
        assert (await lim.check("k")).allowed
        proxy.stop()
        t0 = time.monotonic()
        for _ in range(10):
            with pytest.raises(tk.StoreError):
                await lim.check("k")
        assert time.monotonic() - t0 < AT_ONCE_S
        proxy.start()
        assert (await lim.check("k")).remaining == 98
        await s.aclose()

    asyncio.run(main())


def test_round_trips_per_decision(pg_url: str, pg_table: str) -> None:
    """2 for a consuming transform (allowed or denied), 1 for a read-only one; the sync and async APIs agree."""
    s = PostgresStore(pg_url, table=pg_table, prefix=f"t{uuid.uuid4().hex[:8]}", sweep_interval_ms=0)
    lim = tk.Limiter(tk.Gcra(1, 1000), store=s)
    try:
        lim.check("k")  # first use: the connection and the table (not counted as decision trips)
        for call, trips in (
            (lambda: lim.check("k"), 2),
            (lambda: lim.peek("k"), 1),
            (lambda: lim.forecast("k"), 1),
        ):
            before = s.round_trips
            call()
            assert s.round_trips - before == trips

        async def main() -> None:
            alim = tk.AsyncLimiter(tk.Gcra(1, 1000), store=s)
            await alim.check("a")
            before = s.round_trips
            await alim.check("a")
            await alim.peek("a")
            assert s.round_trips - before == 3
            await s.aclose()

        asyncio.run(main())
    finally:
        s.close()


def test_keys_are_inlined_as_literals_safely(pg_url: str, pg_table: str) -> None:
    """Statements inline values as standard-conforming literals: quotes, backslashes, semicolons and
    non-ASCII keys are data, never SQL; NUL (which Postgres text cannot hold) is a StoreError."""
    s = PostgresStore(pg_url, table=pg_table, prefix=f"q{uuid.uuid4().hex[:8]}", sweep_interval_ms=0)
    lim = tk.Limiter(tk.FixedWindow(2, 3_600_000), store=s)
    hostile = ["a'b", "x'); DROP TABLE t; --", "back\\slash\\'", "E'\\x41'", "ключ ✓", "$$dollar$$"]
    try:
        for key in hostile:
            assert lim.check(key).remaining == 1
            assert lim.check(key).remaining == 0
        assert sorted(k.split(":", 1)[1] for k in _rows(pg_url, pg_table, s.prefix)) == sorted(hostile)
        with pytest.raises(tk.StoreError, match="NUL"):
            lim.check("nul\x00key")
    finally:
        s.close()


def test_an_interrupt_mid_decision_drops_its_connection_and_frees_the_pool_slot(
    pg_url: str, pg_table: str
) -> None:
    """A KeyboardInterrupt (here from a real SIGALRM) while a decision waits on Postgres leaves that
    connection in an unknown state: it is dropped, and the pool's only slot serves the next decision
    (before, the slot stayed taken and every later call waited out acquire_timeout_s)."""
    store = PostgresStore(pg_url, table=pg_table, sweep_interval_ms=0, pool_size=1, acquire_timeout_s=1.0)
    limiter = tk.Limiter(tk.Gcra(10, "1s"), store=store)
    try:
        assert limiter.check("k").allowed  # the table exists; the one pooled connection is idle
        with psycopg.connect(pg_url, autocommit=True) as blocker:
            # another session holds the key's advisory lock: the next decision waits in its first exchange
            blocker.execute("BEGIN")
            blocker.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ["k"])

            def interrupt(_signum: int, _frame: Any) -> None:
                raise KeyboardInterrupt

            previous = signal.signal(signal.SIGALRM, interrupt)
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            try:
                with pytest.raises(KeyboardInterrupt):
                    limiter.check("k")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            blocker.execute("COMMIT")
        assert limiter.check("k").allowed  # the slot is free again
    finally:
        store.close()


def test_the_async_one_key_decision_shares_state_and_answers_with_the_sync_one(
    pg_url: str, pg_table: str
) -> None:
    """``AsyncLimiter.check`` runs the store's asyncio one-key decision (``abind``), the same I/O-free
    middle as the sync ``bind``: alternating the two on one key counts one window, hostile keys are
    data, and a NUL key is a StoreError on both."""
    s = PostgresStore(pg_url, table=pg_table, prefix=f"b{uuid.uuid4().hex[:8]}", sweep_interval_ms=0)
    lim = tk.Limiter(tk.FixedWindow(5, 3_600_000), store=s)
    alim = tk.AsyncLimiter(tk.FixedWindow(5, 3_600_000), store=s)

    async def main() -> list[tuple[bool, int]]:
        seen = []
        for i in range(7):
            d = lim.check("k") if i % 2 == 0 else await alim.check("k")
            seen.append((d.allowed, d.remaining))
        for key in ["a'b", "x'); DROP TABLE t; --", "ключ ✓"]:
            assert (await alim.check(key)).remaining == 4
            assert lim.check(key).remaining == 3
        with pytest.raises(tk.StoreError, match="NUL"):
            await alim.check("nul\x00key")
        assert (await alim.check("after")).remaining == 4  # the failed decision gave its connection back
        await s.aclose()
        return seen

    try:
        assert asyncio.run(main()) == [
            (True, 4),
            (True, 3),
            (True, 2),
            (True, 1),
            (True, 0),
            (False, 0),
            (False, 0),
        ]
    finally:
        s.close()


def test_the_async_one_key_decision_is_bounded_on_a_frozen_store_and_cancellable(
    pg_url: str, pg_table: str, proxy: Proxy
) -> None:
    """A frozen peer (SIGSTOP'd proxy) under ``AsyncLimiter.check``: StoreError within the op timeout;
    a task cancelled while it waits gives its connection and its key back (the pool's one slot serves
    the next decision once the store answers again)."""
    s = PostgresStore(_outage_url(pg_url, proxy.port), table=pg_table, prefix=f"z{uuid.uuid4().hex[:8]}",
                      sweep_interval_ms=0, op_timeout_s=0.5, pool_size=1, acquire_timeout_s=1.0)  # fmt: skip
    alim = tk.AsyncLimiter(tk.Gcra(1000, 1000), store=s)
    assert proxy.proc is not None

    async def main() -> None:
        assert (await alim.check("k")).allowed
        os.kill(proxy.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(tk.StoreError, match="no reply within op_timeout_s"):
                await alim.check("k")
            assert time.monotonic() - t0 < 1.5
            task = asyncio.ensure_future(alim.check("k"))
            await asyncio.sleep(0.1)
            t0 = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - t0 < 0.3  # at once: no attempt to cancel the query on a frozen peer
        finally:
            os.kill(proxy.proc.pid, signal.SIGCONT)
        assert (await asyncio.wait_for(alim.check("k"), 3)).allowed
        await s.aclose()

    try:
        asyncio.run(main())
    finally:
        s.close()


def _end_backends(pg_url: str, app: str) -> int:
    """Have the server end every backend of ``application_name`` ``app`` (a restart, as a pool sees it);
    how many it ended."""
    with psycopg.connect(pg_url, autocommit=True) as other:
        row = other.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", [app]
        ).fetchone()
    return int(row[0]) if row else 0


# -- the asyncio transport: one reader per connection (throttlekit.stores._pgconn.AsyncLink) ------------

_LOOPS = ["asyncio", "uvloop"]


def _run(loop: str, coro: Any) -> Any:
    """``coro`` on a fresh loop of kind ``loop`` (the server runs on uvloop where installed)."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="pip install uvloop (the server's loop)")
        return uvloop.run(coro)
    return asyncio.run(coro)


async def _link(pg_url: str) -> Any:
    from throttlekit.stores import _pgconn as pgc

    return await pgc.aconnect(pg_url, pgc.conn_kwargs(pg_url, 2, 5000, 5000, 2.0), 2.0)


async def _cpu_while_idle(seconds: float) -> float:
    """Process CPU seconds spent while the loop idles ``seconds`` (a reader spinning on a readable
    socket would spend about all of it)."""
    c0 = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - c0


@pytest.mark.parametrize("loop", _LOOPS)
def test_the_asyncio_link_reads_unasked_input_between_exchanges(pg_url: str, loop: str) -> None:
    """Notifications the server sends while the link is idle are drained (no loop spinning on a
    readable socket), and the next exchange answers its own query."""
    channel = f"tk_{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        link = await _link(pg_url)
        try:
            await link.exchange(f"LISTEN {channel}".encode(), 2.0)
            with psycopg.connect(pg_url, autocommit=True) as other:
                for i in range(50):
                    other.execute(f"NOTIFY {channel}, 'n{i}'")
            assert await _cpu_while_idle(0.3) < 0.15
            assert not link.closed
            res = await link.exchange(b"SELECT 41 + 1", 2.0)
            assert res.get_value(0, 0) == b"42"
        finally:
            await link.close()

    _run(loop, main())


@pytest.mark.parametrize("loop", _LOOPS)
def test_the_asyncio_link_stops_watching_a_backend_the_server_ended(pg_url: str, loop: str) -> None:
    """The server ends an idle link's backend: the link stops watching the dead socket (no spinning),
    says it is closed, and an exchange on it fails as a dropped connection (which the store retries)."""

    async def main() -> None:
        link = await _link(pg_url)
        pid = int((await link.exchange(b"SELECT pg_backend_pid()", 2.0)).get_value(0, 0))
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert await _cpu_while_idle(0.3) < 0.15
        assert link.closed
        with pytest.raises(psycopg.OperationalError):
            await link.exchange(b"SELECT 1", 2.0)
        link.finish()

    _run(loop, main())


@pytest.mark.parametrize("loop", _LOOPS)
def test_the_asyncio_link_sends_a_query_larger_than_the_socket_buffer(pg_url: str, loop: str) -> None:
    """An 8 MB query does not fit the socket at once: the link waits for the socket to take the rest
    (reading meanwhile) and returns the answer; the next exchange is unaffected."""
    big = "x" * 8_000_000

    async def main() -> None:
        link = await _link(pg_url)
        _small_send_buffer(link.pgconn.socket)
        try:
            res = await link.exchange(f"SELECT length('{big}')".encode(), 10.0)
            assert res.get_value(0, 0) == b"8000000"
            assert (await link.exchange(b"SELECT 7", 2.0)).get_value(0, 0) == b"7"
        finally:
            await link.close()

    _run(loop, main())


@pytest.mark.parametrize("loop", _LOOPS)
def test_the_asyncio_link_times_out_and_is_cancellable(pg_url: str, loop: str) -> None:
    """A query slower than ``op_timeout_s`` raises TimeoutError at the deadline; a task cancelled
    mid-exchange ends at once. Either way the link is dropped with ``finish`` (the pool's way)."""

    async def main() -> None:
        link = await _link(pg_url)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await link.exchange(b"SELECT pg_sleep(2)", 0.2)
        assert 0.15 < time.monotonic() - t0 < 1.0
        link.finish()
        assert link.closed
        link = await _link(pg_url)
        task = asyncio.ensure_future(link.exchange(b"SELECT pg_sleep(2)", 5.0))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 0.2
        link.finish()

    _run(loop, main())


def test_the_asyncio_link_closed_from_another_thread_is_closed_on_its_loop(pg_url: str) -> None:
    """``finish`` from a thread other than the link's running loop (a sync ``close`` of the store while
    its loop runs elsewhere) hands the close to that loop: the reader is removed on the loop's own
    thread (a loop is not thread-safe), then libpq closes the socket."""
    import threading

    class Loop(asyncio.SelectorEventLoop):
        removed_in: list[int] = []

        def remove_reader(self, fd: Any) -> bool:
            self.removed_in.append(threading.get_ident())
            return super().remove_reader(fd)

    loop = Loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        link = asyncio.run_coroutine_threadsafe(_link(pg_url), loop).result(5)
        Loop.removed_in.clear()  # (psycopg's connect waits on the socket too)
        link.finish()  # from this thread
        deadline = time.monotonic() + 2
        while not Loop.removed_in and time.monotonic() < deadline:
            time.sleep(0.01)
        assert Loop.removed_in == [thread.ident]
        assert link.closed and link.pgconn.status != 0  # libpq's CONNECTION_OK is 0
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_a_server_on_the_asyncio_store_survives_a_terminated_backend(pg_url: str, pg_table: str) -> None:
    """End to end on ``AsyncLimiter``: the pool's idle connection is ended by the server; the next
    decision runs on a fresh connection and counts on from the same state."""
    app = f"tk_{uuid.uuid4().hex[:8]}"
    s = PostgresStore(f"{pg_url}?application_name={app}", table=pg_table, prefix=f"t{uuid.uuid4().hex[:8]}",
                      sweep_interval_ms=0, pool_size=1)  # fmt: skip
    alim = tk.AsyncLimiter(tk.FixedWindow(10, "1h"), store=s)

    async def main() -> None:
        assert (await alim.check("k")).remaining == 9
        assert _end_backends(pg_url, app) == 1
        assert await _cpu_while_idle(0.3) < 0.15
        assert (await alim.check("k")).remaining == 8
        await s.aclose()

    try:
        asyncio.run(main())
    finally:
        s.close()


# -- the sync transport: one poll object per connection (throttlekit.stores._pgconn.Link) ----------------


def _sync_link(pg_url: str) -> Any:
    from throttlekit.stores import _pgconn as pgc

    return pgc.connect(pg_url, pgc.conn_kwargs(pg_url, 2, 5000, 5000, 2.0))


def test_the_sync_link_answers_its_own_query_after_unasked_input(pg_url: str) -> None:
    """Notifications that arrived between two exchanges wake the first wait of the next one; it reads
    on until its own results, and a reply spread over many packets (4 MB) arrives whole."""
    channel = f"tk_{uuid.uuid4().hex[:8]}"
    link = _sync_link(pg_url)
    try:
        link.exchange(f"LISTEN {channel}".encode(), 2.0)
        with psycopg.connect(pg_url, autocommit=True) as other:
            for i in range(50):
                other.execute(f"NOTIFY {channel}, 'n{i}'")
        time.sleep(0.05)
        assert link.exchange(b"SELECT 41 + 1", 2.0).get_value(0, 0) == b"42"
        big = link.exchange(b"SELECT repeat('x', 4000000)", 5.0).get_value(0, 0)
        assert big == b"x" * 4_000_000
    finally:
        link.close()
    assert link.closed


def _small_send_buffer(fd: int) -> None:
    """Cap a connection's socket send buffer at 64 KB, so a large query cannot leave in one write
    however fast the server reads (the kernel's own buffer grows to megabytes on loopback)."""
    s = socket.socket(fileno=os.dup(fd))
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    finally:
        s.close()


def test_the_sync_link_sends_a_query_larger_than_the_socket_buffer(pg_url: str) -> None:
    """psycopg runs libpq non-blocking, so ``send_query`` leaves what the socket did not take in libpq's
    buffer: the link sends the rest before it waits for the answer (it waited for an answer to a query
    the server never received, until the timeout), and the next exchange is unaffected."""
    link = _sync_link(pg_url)
    _small_send_buffer(link.pgconn.socket)
    try:
        t0 = time.monotonic()
        sent = link.exchange(f"SELECT length('{'y' * 8_000_000}')".encode(), 10.0).get_value(0, 0)
        assert sent == b"8000000"
        assert time.monotonic() - t0 < 5.0
        assert link.exchange(b"SELECT 7", 2.0).get_value(0, 0) == b"7"
        with pytest.raises(TimeoutError):  # the send, too, is bounded by the exchange's deadline
            link.exchange(f"SELECT length('{'y' * 8_000_000}')".encode(), 0.000_001)
    finally:
        link.finish()


@pytest.mark.parametrize("then", ["freeze", "close"])
def test_the_sync_link_bounds_a_send_the_peer_stops_taking(pg_url: str, then: str) -> None:
    """A peer that stops reading in the middle of a large query (a proxy that freezes, holding the
    connection open and silent) leaves the send waiting for writability: it ends at the exchange's
    deadline. A peer that closes the connection mid-send fails the exchange at once, as a dropped
    connection (what the store retries once)."""
    marker = "q" * 64
    p = Proxy(5432, match=marker.encode(), then=then)
    try:
        link = _sync_link(_outage_url(pg_url, p.port))
        _small_send_buffer(link.pgconn.socket)
        try:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError if then == "freeze" else psycopg.OperationalError):
                link.exchange(f"SELECT length('{marker * 125_000}')".encode(), 1.0)
            elapsed = time.monotonic() - t0
            assert (0.9 < elapsed < 2.5) if then == "freeze" else elapsed < 0.9
        finally:
            link.finish()
    finally:
        p.stop()


def test_the_sync_link_times_out_and_reports_a_backend_the_server_ended(pg_url: str) -> None:
    """A query slower than ``op_timeout_s`` raises TimeoutError at the deadline (the store's
    "no reply within op_timeout_s"); a backend the server ended fails the next exchange as a dropped
    connection (the store retries that once)."""
    from throttlekit.stores import _pgconn as pgc

    link = _sync_link(pg_url)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        link.exchange(b"SELECT pg_sleep(2)", 0.2)
    assert 0.15 < time.monotonic() - t0 < 1.0
    assert "no reply within op_timeout_s" in str(pgc.store_error(info.value))
    link.finish()
    assert link.closed
    link = _sync_link(pg_url)
    pid = int(link.exchange(b"SELECT pg_backend_pid()", 2.0).get_value(0, 0))
    with psycopg.connect(pg_url, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.05)
    with pytest.raises(psycopg.OperationalError) as dropped:
        link.exchange(b"SELECT 1", 2.0)
    assert pgc.is_connection_error(dropped.value)
    link.finish()


def test_a_sync_store_survives_a_terminated_backend(pg_url: str, pg_table: str) -> None:
    """End to end on ``Limiter``: the pool's idle connection is ended by the server; the next decision
    runs on a fresh connection and counts on from the same state."""
    app = f"tk_{uuid.uuid4().hex[:8]}"
    s = PostgresStore(f"{pg_url}?application_name={app}", table=pg_table, prefix=f"s{uuid.uuid4().hex[:8]}",
                      sweep_interval_ms=0, pool_size=1)  # fmt: skip
    try:
        lim = tk.Limiter(tk.FixedWindow(10, "1h"), store=s)
        assert lim.check("k").remaining == 9
        assert _end_backends(pg_url, app) == 1
        time.sleep(0.05)
        assert lim.check("k").remaining == 8
    finally:
        s.close()


def _end_backend_soon(pg_url: str, pid: int, after_s: float) -> Any:
    """A thread that ends backend ``pid`` after ``after_s`` (the server going away mid-query)."""
    import threading

    def end() -> None:
        time.sleep(after_s)
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])

    thread = threading.Thread(target=end, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("api", ["sync", "asyncio", "uvloop"])
def test_a_backend_ended_mid_exchange_fails_it_at_once_as_a_dropped_connection(pg_url: str, api: str) -> None:
    """The server ends the backend while an exchange waits (a restart mid-query): the exchange fails
    within a second, not at its 10 s deadline, with an error the store treats as a dropped connection."""
    from throttlekit.stores import _pgconn as pgc

    if api == "sync":
        link = _sync_link(pg_url)
        pid = int(link.exchange(b"SELECT pg_backend_pid()", 2.0).get_value(0, 0))
        ender = _end_backend_soon(pg_url, pid, 0.2)
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as info:
            link.exchange(b"SELECT pg_sleep(5)", 10.0)
        link.finish()
    else:

        async def main() -> Any:
            link = await _link(pg_url)
            pid = int((await link.exchange(b"SELECT pg_backend_pid()", 2.0)).get_value(0, 0))
            ender = _end_backend_soon(pg_url, pid, 0.2)
            t0 = time.monotonic()
            with pytest.raises(psycopg.OperationalError) as info:
                await link.exchange(b"SELECT pg_sleep(5)", 10.0)
            link.finish()
            return ender, t0, info

        ender, t0, info = _run("uvloop" if api == "uvloop" else "asyncio", main())
    assert time.monotonic() - t0 < 1.5
    assert pgc.is_connection_error(info.value)
    ender.join(5)


@pytest.mark.parametrize("loop", _LOOPS)
def test_a_link_whose_backend_ended_never_touches_the_next_connection_on_its_descriptor(
    pg_url: str, loop: str
) -> None:
    """libpq closes the socket of a connection the server ended, and the next connection usually gets the
    same descriptor number. The dead link must have stopped watching it: closing the dead link later must
    not remove the new connection's reader (its exchanges would then wait for their timeout)."""

    async def main() -> None:
        dead = await _link(pg_url)
        fd = dead.pgconn.socket
        pid = int((await dead.exchange(b"SELECT pg_backend_pid()", 2.0)).get_value(0, 0))
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])
        await asyncio.sleep(0.2)  # the reader sees the end; libpq closes the socket
        assert dead.closed
        fresh = await _link(pg_url)
        try:
            assert fresh.pgconn.socket == fd  # the descriptor number was reused
            dead.finish()
            res = await fresh.exchange(b"SELECT 5", 1.0)
            assert res.get_value(0, 0) == b"5"
        finally:
            await fresh.close()

    _run(loop, main())
