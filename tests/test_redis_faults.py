"""Redis faults, for real, on every Redis store: a peer that accepts and never answers, a redis-server of
our own frozen with SIGSTOP (during the AUTH/SELECT handshake and after it), a BUSY script, a WRONGTYPE
key, and an asyncio store used under a second event loop. Each gives a clear error within the documented
timeout, never a hang. The shared Redis on 6379 is never touched: every server here is our own."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis as redis_lib

import throttlekit as tk
from tests._support.env import REAL_REDIS, REDIS_URL
from tests._support.watchdog import fails_fast
from throttlekit.stores import open_async, open_sync

STRATEGY = tk.FixedWindow(10, "1h")
TIMEOUTS = "socket_connect_timeout=0.3&socket_timeout=0.3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Silent:
    """A TCP server that accepts connections and never answers a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.conns: list[socket.socket] = []
        self.stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.05)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    s = Silent()
    yield s
    s.close()


class OwnRedis:
    """A redis-server of our own on a free port (``requirepass`` set), killed at teardown."""

    def __init__(self, *extra: str) -> None:
        self.port = _free_port()
        self.password = "s3cret"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--requirepass", self.password, *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                redis_lib.Redis(port=self.port, password=self.password, socket_timeout=0.5).ping()
                break
            except redis_lib.RedisError:
                if time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def url(self, db: int = 0, query: str = TIMEOUTS) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}?{query}"

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis(port=self.port, password=self.password, socket_timeout=10)

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.thaw()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    r = OwnRedis("--lua-time-limit", "50", "--busy-reply-threshold", "50")
    yield r
    r.close()


def _sync_check(url: str) -> Callable[[], Any]:
    lim = tk.Limiter(STRATEGY, store=url)
    return lambda: lim.check("k")


def _async_check(url: str) -> Callable[[], Any]:
    async def run() -> Any:
        async with tk.AsyncLimiter(STRATEGY, store=url) as lim:
            return await lim.check("k")

    return lambda: asyncio.run(run())


def _redis_py_async_check(url: str) -> Callable[[], Any]:
    async def run() -> Any:
        async with tk.AsyncRedisStore(url=url) as store:
            return await tk.AsyncLimiter(STRATEGY, store=store).check("k")

    return lambda: asyncio.run(run())


PATHS = {"sync": _sync_check, "async pipelined": _async_check, "async redis-py": _redis_py_async_check}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("url_tail", ["/1", "/0", "/0?password"], ids=["db1", "db0", "auth"])
def test_a_peer_that_never_answers_is_a_store_error(silent: Silent, path: str, url_tail: str) -> None:
    db, _, auth = url_tail.partition("?")
    cred = ":pw@" if auth else ""
    url = f"redis://{cred}127.0.0.1:{silent.port}{db}?{TIMEOUTS}"
    fails_fast(PATHS[path](url), "redis")


@pytest.mark.parametrize("path", list(PATHS))
def test_a_frozen_redis_during_the_handshake_is_a_store_error(own_redis: OwnRedis, path: str) -> None:
    own_redis.freeze()  # accept() still completes in the kernel; AUTH/SELECT never get a reply
    try:
        fails_fast(PATHS[path](own_redis.url(db=3)), "redis")
    finally:
        own_redis.thaw()


def test_a_frozen_redis_after_connecting_is_a_store_error_and_recovers(own_redis: OwnRedis) -> None:
    store = open_sync(own_redis.url(db=2))
    lim = tk.Limiter(STRATEGY, store=store)
    assert lim.check("k").remaining == 9
    own_redis.freeze()
    try:
        fails_fast(lambda: lim.check("k"), "timed out")
    finally:
        own_redis.thaw()
    # a fresh connection serves (the timed-out one was dropped); the timed-out command itself may have
    # run when Redis resumed, as any command whose reply was lost
    assert lim.check("k").remaining in (7, 8)
    store.close()


def test_a_wrong_password_is_a_store_error_naming_auth(own_redis: OwnRedis) -> None:
    url = f"redis://:nope@127.0.0.1:{own_redis.port}/0?{TIMEOUTS}"
    for path in PATHS.values():
        fails_fast(path(url), "AUTH failed" if path is not _redis_py_async_check else "redis")


def _busy(own: OwnRedis, seconds: float = 1.5) -> threading.Thread:
    """Run a script that spins ``seconds``: Redis answers BUSY to everyone else meanwhile."""
    client = own.client()

    def spin() -> None:
        try:
            client.eval("local t = redis.call('TIME') local s = t[1] + t[2] / 1e6 "
                        "while true do t = redis.call('TIME') if t[1] + t[2] / 1e6 - s > tonumber(ARGV[1]) then break end end "
                        "return 1", 0, seconds)  # fmt: skip
        except redis_lib.RedisError:
            pass

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    probe = own.client()
    while time.monotonic() < deadline:  # wait until Redis answers BUSY
        try:
            probe.ping()
        except redis_lib.ResponseError as exc:
            if "BUSY" in str(exc):
                return t
        time.sleep(0.02)
    raise AssertionError("Redis never answered BUSY")


def test_busy_is_a_store_error_on_every_redis_store(own_redis: OwnRedis) -> None:
    url = own_redis.url(query="socket_timeout=5&socket_connect_timeout=1")
    sync_store = open_sync(url)
    sync = tk.Limiter(STRATEGY, store=sync_store)
    sync.check("warm")  # connected and the script loaded before Redis turns busy
    spinner = _busy(own_redis)
    with pytest.raises(tk.StoreError, match="BUSY"):
        sync.check("k")
    with pytest.raises(tk.StoreError, match="BUSY"):
        sync.check_many(["a", "b"])

    async def run_async(store: Any) -> None:
        lim = tk.AsyncLimiter(STRATEGY, store=store)
        with pytest.raises(tk.StoreError, match="BUSY"):
            await lim.check("k")
        with pytest.raises(tk.StoreError, match="BUSY"):
            await lim.check_many(["a", "b"])
        await store.aclose()

    asyncio.run(run_async(open_async(url)))
    asyncio.run(run_async(tk.AsyncRedisStore(url=url)))
    spinner.join()
    assert sync.check("k").allowed  # Redis is back: the same store serves again
    sync_store.close()


@pytest.mark.skipif(REAL_REDIS is None, reason="needs a real Redis")
def test_wrongtype_names_the_key_on_every_redis_store() -> None:
    prefix = f"tkw-{uuid.uuid4().hex[:8]}"
    REAL_REDIS.set(f"{prefix}:k", "not a hash")  # type: ignore[union-attr]
    try:
        sync = tk.Limiter(tk.TokenBucket(5, 1), store=f"{REDIS_URL}?prefix={prefix}")
        with pytest.raises(tk.WrongTypeError) as info:
            sync.check("k")
        assert info.value.key == f"{prefix}:k" and info.value.transform == "token_bucket"
        assert isinstance(info.value, tk.ScriptError)
        sync.close()

        async def run(store: Any) -> tk.WrongTypeError:
            with pytest.raises(tk.WrongTypeError) as info:
                await tk.AsyncLimiter(tk.TokenBucket(5, 1), store=store).check("k")
            await store.aclose()
            return info.value

        for store in (
            tk.from_url_async(f"{REDIS_URL}?prefix={prefix}"),
            tk.AsyncRedisStore(url=f"{REDIS_URL}?prefix={prefix}"),
        ):
            err = asyncio.run(run(store))
            assert err.key == f"{prefix}:k"
    finally:
        REAL_REDIS.delete(f"{prefix}:k")  # type: ignore[union-attr]


@pytest.mark.skipif(REAL_REDIS is None, reason="needs a real Redis")
def test_the_redis_py_async_store_under_a_second_event_loop_fails_at_once() -> None:
    store = tk.AsyncRedisStore(url=f"{REDIS_URL}?{TIMEOUTS}")

    async def first() -> None:
        await store.aping()
        await store.client.connection_pool.disconnect()  # its sockets belong to this loop

    asyncio.run(first())
    with pytest.raises(tk.StoreError, match="bound to the event loop it first ran on"):
        asyncio.run(asyncio.wait_for(store.aping(), 5))


@pytest.mark.skipif(REAL_REDIS is None, reason="needs a real Redis")
@pytest.mark.parametrize("kind", ["url", "pipelined"])
def test_an_async_store_under_a_second_event_loop_works(kind: str) -> None:
    prefix = f"tkl-{uuid.uuid4().hex[:8]}"
    url = f"{REDIS_URL}?prefix={prefix}&{TIMEOUTS}"
    if kind == "url":
        lim = tk.AsyncLimiter(STRATEGY, store=url)
    else:
        lim = tk.AsyncLimiter(STRATEGY, store=tk.from_url_async(url))

    async def once() -> int:
        return (await asyncio.wait_for(lim.check("k"), 5)).remaining

    assert asyncio.run(once()) == 9
    assert asyncio.run(once()) == 8  # a new loop: the store reconnects on it, no hang
    assert asyncio.run(once()) == 7
    asyncio.run(lim.reset("k"))
    asyncio.run(lim.store.aclose())


@pytest.mark.skipif(REAL_REDIS is None, reason="needs a real Redis")
def test_a_pipelined_store_used_by_two_running_loops_fails_at_once() -> None:
    store = tk.from_url_async(f"{REDIS_URL}?{TIMEOUTS}")
    started, release = threading.Event(), threading.Event()

    async def hold() -> None:
        await store.aping()
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)

    t = threading.Thread(target=lambda: asyncio.run(hold()))
    t.start()
    started.wait(5)
    try:
        with pytest.raises(tk.StoreError, match="another running event loop"):
            asyncio.run(asyncio.wait_for(store.aping(), 5))
    finally:
        release.set()
        t.join()
    asyncio.run(store.aping())  # the first loop is gone: this one may take the store over
    asyncio.run(store.aclose())


def test_script_load_and_retry_on_noscript_for_every_store(own_redis: OwnRedis) -> None:
    url = own_redis.url()
    client = own_redis.client()
    sync = tk.Limiter(STRATEGY, store=url)
    assert sync.check("a").remaining == 9
    client.script_flush()
    assert sync.check("a").remaining == 8
    client.script_flush()
    assert [d.remaining for d in sync.check_many(["a", "b"])] == [7, 9]

    async def run(store: Any) -> list[int]:
        lim = tk.AsyncLimiter(STRATEGY, store=store)
        client.script_flush()
        one = (await lim.check("c")).remaining
        client.script_flush()
        many = [d.remaining for d in await lim.check_many(["c", "d"])]
        await store.aclose()
        return [one, *many]

    assert asyncio.run(run(tk.from_url_async(url))) == [9, 8, 9]
    assert asyncio.run(run(tk.AsyncRedisStore(url=url))) == [7, 6, 8]
    sync.close()


def test_busy_is_answered_per_fail_mode_by_the_server(own_redis: OwnRedis) -> None:
    """The server's view of BUSY: a store outage, so the decision is synthesized per ``fail``."""
    from throttlekit.server import create_rate_limiter_service_from_config

    url = own_redis.url(query="socket_timeout=5&socket_connect_timeout=1")
    text = "version: 1\nlimiters:\n  api: { strategy: fixedWindow, limit: 10, period: 1h }\n"

    async def run(fail: str) -> list[tk.Decision]:
        svc = create_rate_limiter_service_from_config(text, store=url, fail=fail)  # type: ignore[arg-type]
        try:
            return [await svc.check("api", "k"), *(await svc.check_many("api", ["a", "b"]))]
        finally:
            await svc.aclose()

    asyncio.run(run("open"))  # connected and loaded before Redis turns busy
    spinner = _busy(own_redis, 4.0)
    closed = asyncio.run(run("closed"))
    opened = asyncio.run(run("open"))
    spinner.join()
    assert [(d.allowed, d.remaining, d.reset_at) for d in closed] == [(False, 0, 0)] * 3
    assert [(d.allowed, d.remaining, d.reset_at) for d in opened] == [(True, 10, 0)] * 3


def test_bind_and_abind_fast_paths_match_eval_and_reload_scripts(own_redis: OwnRedis) -> None:
    """The stores' fast paths (constant parts packed once; the common tail too) answer as ``eval`` does,
    for the store's clock and cost 1 and for an explicit clock and cost, and survive a SCRIPT FLUSH."""
    url = own_redis.url()
    client = own_redis.client()
    strategy = tk.FixedWindow(10, "1h")
    name, params = strategy.check_transform, tuple(strategy.params)
    sec, usec = client.time()
    now = sec * 1000 + usec // 1000  # Redis' own clock: explicit and SERVER_TIME calls share one window
    sync = open_sync(url)
    bound = sync.bind(name, params)
    assert list(bound("a", tk.SERVER_TIME, 1))[:3] == [1, 10, 9]
    client.script_flush()
    assert list(bound("a", now, 3))[:3] == [1, 10, 6]
    assert list(sync.eval(name, ("a",), now, (*params, 1)))[:3] == [1, 10, 5]

    async def run() -> list[Any]:
        store = open_async(url)
        call = store.abind(name, params)
        client.script_flush()
        out = [list(await call("b", now, 2))[:3], list(await call("b", tk.SERVER_TIME, 1))[:3]]
        out.append(list(await store.aeval(name, ("b",), now, (*params, 1)))[:3])
        await store.aclose()
        return out

    assert asyncio.run(run()) == [[1, 10, 8], [1, 10, 7], [1, 10, 6]]
    sync.close()


def test_noscript_is_reloaded_up_to_max_loads_then_is_a_store_error() -> None:
    """A SCRIPT FLUSH racing between SCRIPT LOAD and the resend is survived (MAX_LOADS loads); a script the
    server keeps dropping is a StoreError (the caller's fail mode), never a script's fault (INTERNAL).
    The I/O-free EVALSHA-or-load step every Redis store drives, fed real hiredis error replies."""
    import hiredis

    from throttlekit._loader import load_manifest
    from throttlekit.stores import _resp

    t = load_manifest()["gcra"]
    noscript = hiredis.ReplyError("NOSCRIPT No matching script. Please use EVAL.")
    decision = [1, 5, 4, 1_700_000_000_000, 0]

    def serving(flushes: int) -> tuple[Callable[[Any], Any], list[str]]:
        log: list[str] = []

        def serve(request: Any) -> Any:
            if request is _resp.LOAD:
                log.append("load")
                return t.sha
            log.append(f"resend {request}")
            return [noscript if log.count("load") <= flushes else decision for _ in request]

        return serve, log

    serve, log = serving(flushes=_resp.MAX_LOADS - 1)  # flushed after each load but the last
    assert _resp.drive(_resp.settle(t, [noscript, decision], [("a",), ("b",)]), serve) == [decision] * 2
    assert log.count("load") == _resp.MAX_LOADS and log[-1] == "resend [0]"

    serve, log = serving(flushes=_resp.MAX_LOADS)  # the scripts never stay
    with pytest.raises(tk.StoreError, match=r"gcra still NOSCRIPT after 3 SCRIPT LOADs"):
        _resp.drive(_resp.settle(t, [noscript], [("a",)]), serve)
    assert log.count("load") == _resp.MAX_LOADS


def test_more_replies_than_commands_is_a_store_error_and_the_connection_is_dropped() -> None:
    """A peer out of step (more replies than the batch carried commands) fails the batch as a StoreError
    naming the counts; the connection is closed, not handed back to the pool."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = srv.accept()
        accepted.append(conn)
        while data := conn.recv(65536):
            conn.sendall(b":1\r\n" * (data.count(b"EVALSHA") + 1))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    store = tk.RedisStore(url=f"redis://127.0.0.1:{port}/0")
    try:
        limiter = tk.Limiter(tk.FixedWindow(10, "1h"), store=store)
        with pytest.raises(tk.StoreError, match="3 replies to 2 commands"):
            limiter.check_many(["a", "b"])
        thread.join(timeout=5)
        assert not thread.is_alive()  # the peer saw the connection closed
    finally:
        store.close()
        for c in accepted:
            c.close()
        srv.close()
