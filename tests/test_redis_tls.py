"""``rediss://`` on every Redis store, against a TLS redis-server of the test's own (mutual TLS): the URL's
TLS options (CA, client certificate and key) mean the same on the sync, pipelined and redis-py stores, a
server certificate from another CA is a StoreError, never a hang, and so is a TLS Redis that freezes."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import throttlekit as tk
from tests._support.certs import Pki, make_pki
from tests._support.watchdog import fails_fast

STRATEGY = tk.FixedWindow(10, "1h")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TlsRedis(NamedTuple):
    port: int
    pki: Pki
    proc: subprocess.Popen[bytes]


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    pki = make_pki(tmp_path)
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key),
         "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "yes"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    deadline = time.monotonic() + 10
    while True:
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw,
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
            ):
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.skip(f"redis-server without TLS support: {err[-300:]}")
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield TlsRedis(port, pki, proc)
    proc.send_signal(signal.SIGCONT)  # a frozen one dies too
    proc.kill()
    proc.wait()
    if proc.stderr:
        proc.stderr.close()


def _url(port: int, pki: Pki, ca: Path | None = None) -> str:
    return (
        f"rediss://127.0.0.1:{port}/2?prefix=tls&ssl_ca_certs={ca or pki.ca}"
        f"&ssl_certfile={pki.client_cert}&ssl_keyfile={pki.client_key}"
        "&socket_connect_timeout=2&socket_timeout=2"
    )


def test_rediss_on_every_redis_store(tls_redis: TlsRedis) -> None:
    port, pki = tls_redis.port, tls_redis.pki
    url = _url(port, pki)
    with tk.Limiter(STRATEGY, store=url, prefix="api") as sync:
        assert sync.check("k").remaining == 9
        assert [d.remaining for d in sync.check_many(["k", "j"])] == [8, 9]

    async def run(store: Any) -> int:
        lim = tk.AsyncLimiter(STRATEGY, store=store, prefix="api")
        remaining = (await lim.check("k")).remaining
        await store.aclose()
        await asyncio.sleep(0.05)  # redis-py closes TLS gracefully (close_notify) on later ticks
        return remaining

    assert asyncio.run(run(tk.from_url_async(url))) == 7  # one counter: same db 2, prefix, key
    assert asyncio.run(run(tk.AsyncRedisStore(url=url))) == 6


def test_a_server_certificate_from_another_ca_is_a_store_error(tls_redis: TlsRedis) -> None:
    port, pki = tls_redis.port, tls_redis.pki
    url = _url(port, pki, ca=pki.other_ca)
    with pytest.raises(tk.StoreError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        tk.Limiter(STRATEGY, store=url).check("k")

    async def run() -> None:
        async with tk.AsyncLimiter(STRATEGY, store=url) as lim:
            try:
                await lim.check("k")
            finally:
                await asyncio.sleep(0.05)  # asyncio closes the failed handshake's transport on a later tick

    with pytest.raises(tk.StoreError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        asyncio.run(run())


def _frozen_url(tls_redis: TlsRedis) -> str:
    return _url(tls_redis.port, tls_redis.pki).replace("socket_timeout=2", "socket_timeout=0.3")


def test_a_frozen_tls_redis_is_a_store_error_within_the_timeout(tls_redis: TlsRedis) -> None:
    """The kernel's deadline cannot bound a blocking TLS read (CPython's ``ssl`` reads again when it
    expires), so a TLS connection gets Python's socket timeout: a SIGSTOPped TLS Redis is a StoreError
    within ``socket_timeout``, where a check used to wait forever."""
    lim = tk.Limiter(STRATEGY, store=_frozen_url(tls_redis))
    assert lim.check("frozen").remaining == 9
    tls_redis.proc.send_signal(signal.SIGSTOP)
    try:
        fails_fast(
            lambda: lim.check("frozen"), f"timed out: no reply within 0.3 s (127.0.0.1:{tls_redis.port}"
        )
    finally:
        tls_redis.proc.send_signal(signal.SIGCONT)
        lim.close()


def test_a_frozen_tls_redis_fails_a_batch_with_the_same_clear_error(tls_redis: TlsRedis) -> None:
    """The pooled connection's batch path (``check_many``) over TLS: the expired wait is the same
    "timed out: no reply within" error as the single check's, not a bare TimeoutError."""
    lim = tk.Limiter(STRATEGY, store=_frozen_url(tls_redis))
    assert [d.remaining for d in lim.check_many(["a", "b"])] == [9, 9]
    tls_redis.proc.send_signal(signal.SIGSTOP)
    try:
        fails_fast(lambda: lim.check_many(["a", "b"]), "timed out: no reply within 0.3 s")
    finally:
        tls_redis.proc.send_signal(signal.SIGCONT)
        lim.close()


def test_a_frozen_tls_redis_fails_the_asyncio_store_within_the_timeout(tls_redis: TlsRedis) -> None:
    """The asyncio store (the server's) over TLS: its waits are the event loop's, bounded by
    ``socket_timeout`` whatever the socket, so a frozen TLS Redis is a StoreError within it too."""
    import asyncio

    async def frozen() -> None:
        async with tk.AsyncLimiter(STRATEGY, store=_frozen_url(tls_redis)) as lim:
            assert (await lim.check("async-frozen")).remaining == 9
            tls_redis.proc.send_signal(signal.SIGSTOP)
            await lim.check("async-frozen")

    try:
        fails_fast(lambda: asyncio.run(frozen()), f"no reply within 0.3 s (127.0.0.1:{tls_redis.port}")
    finally:
        tls_redis.proc.send_signal(signal.SIGCONT)


def test_tk_bench_raw_socket_on_a_frozen_tls_redis_is_a_clear_error(tls_redis: TlsRedis) -> None:
    """``tk bench``'s raw socket is opened as the store's: over TLS its loops give up within the timeout
    too, and the error names the address, the timeout and the group."""
    from throttlekit._bench_redis import _bounded, _raw_one, _raw_socket, raw_command
    from throttlekit.stores._redisconn import redis_options

    url = _frozen_url(tls_redis)
    with tk.Limiter(STRATEGY, store=url) as lim:
        lim.check("frozen")  # loads the script the raw socket's probe runs
    opts = redis_options(url)
    sock, reader = _raw_socket(opts)
    run = _raw_one(sock, reader, raw_command(STRATEGY, "tls:raw-frozen"))

    def raw() -> None:
        with _bounded(opts, "the TLS test"):
            run(10)

    tls_redis.proc.send_signal(signal.SIGSTOP)
    try:
        fails_fast(
            raw, f"no reply from Redis at 127.0.0.1:{tls_redis.port}/2 within 0.3 s during the TLS test"
        )
    finally:
        tls_redis.proc.send_signal(signal.SIGCONT)
        sock.close()
