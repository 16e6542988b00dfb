"""The Redis rows of ``tk bench``: each of our paths next to its physical ceiling, measured in the same run.

Per strategy, interleaved in rounds on one machine:

* ``Limiter.check`` on one thread vs a raw socket + hiredis sending the very same EVALSHA bytes
  (the command our store sends, captured once) and reading the reply: nothing can be cheaper. Beside
  them, the floor of any Python client answering the same API (:func:`least_client`: the key framed
  per call, the public ``Decision``).
* ``Limiter.check_many(100)`` vs the same 100 EVALSHAs in one write on a raw socket, and beside them
  the same floor for a batch (:func:`least_client_many`).
* ``AsyncLimiter.check_many(100)`` on the pipelined store vs the sync ``check_many(100)``.

Every row carries the median of the per-round ratios and their spread (min..max over rounds): on a shared,
noisy machine only ratios measured side by side mean anything. ``limits``' Redis strategies are listed
for orientation.

The raw ceilings and floors read a socket of their own opened as the store opens its connections
(:func:`~throttlekit.stores._redisconn.open_socket`): every wait is bounded by the URL's ``socket_timeout``
in the kernel, with no extra system call (over TLS by Python's socket timeout, as on the store's), and a
peer that closes is an error too. When Redis stops answering, ``tk bench`` stops with a
:class:`StoreError` naming the address, the timeout and the group, never a hang.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import hiredis

from ._bench import STRATEGIES, Row
from ._clock import SERVER_TIME
from ._errors import StoreError
from ._loader import load_manifest
from ._types import Decision, decision_of
from .limiter import AsyncLimiter, Limiter
from .stores import open_async, open_sync
from .stores._redisconn import RedisOptions, open_socket, redis_options
from .stores._resp import ReplyError, bulk, evalsha_head
from .strategies import Strategy

__all__ = ["least_client", "least_client_many", "raw_command", "redis_rows"]

Progress = Callable[[str], None]

#: Each of ``tk bench``'s rounds is cut into this many interleaved short rounds (the same decisions in
#: all): a drift of the machine's state (a round trip that moved from ~120 us to ~25 us within one run
#: was seen) then hits every contender alike. Two runs each with 3 and with 12 gave medians 0.00-0.07
#: apart with 3 and 0.00-0.04 apart with 12 (the spreads widen, the medians settle).
_SPLIT = 12


def _rate(fn: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - start)


def _against(
    group: str,
    ceiling: tuple[str, Callable[[int], None]],
    ours: dict[str, Callable[[int], None]],
    n: int,
    rounds: int,
) -> list[Row]:
    """Interleave the ceiling and our contenders for ``rounds`` rounds of ``n`` decisions each. Rates are
    medians; each of our rows gets the median per-round ratio to the ceiling and its min..max."""
    name0, fn0 = ceiling
    for fn in (fn0, *ours.values()):  # warm-up: connections, script load
        fn(max(1, n // 10))
    base: list[float] = []
    rates: dict[str, list[float]] = {k: [] for k in ours}
    for _ in range(rounds):
        base.append(_rate(fn0, n))
        for k, fn in ours.items():
            rates[k].append(_rate(fn, n))
    b = statistics.median(base)
    rows = [Row(group, name0, b, 1e6 / b, "", None)]
    for k, vals in rates.items():
        ratios = [v / c for v, c in zip(vals, base)]
        r = statistics.median(vals)
        rows.append(Row(group, k, r, 1e6 / r, name0, statistics.median(ratios), (min(ratios), max(ratios))))
    return rows


def raw_command(strategy: Strategy, full_key: str) -> bytes:
    """The EVALSHA bytes of one cost-1 check of ``strategy`` on ``full_key`` at the server's clock, framed
    from the manifest by hand: what the raw-socket ceilings send."""
    t = load_manifest()[strategy.check_transform]
    params = tuple(strategy.params)
    return b"".join(
        [evalsha_head(t, len(params) + 2), bulk(full_key), bulk(SERVER_TIME), *map(bulk, params), bulk(1)]
    )


def _closed() -> NoReturn:
    """A read answered ``b""``: the peer closed. Called as ``feed(recv(65536) or _closed())``, so the
    measured loops pay one truth test per read for it (feeding ``b""`` and asking again would spin)."""
    raise ConnectionResetError("connection closed by the server")


def _lost(opts: RedisOptions, during: str, exc: BaseException) -> StoreError:
    """The error ``tk bench`` stops with when a raw socket's (or the ``limits`` group's redis-py client's)
    wait expired or its peer went away."""
    import redis

    # the kernel's deadline; Python's over TLS; redis-py's socket_timeout
    if isinstance(exc, (BlockingIOError, TimeoutError, redis.TimeoutError)):
        return StoreError(
            f"redis: no reply from Redis at {opts.address} within {opts.timeout:g} s during {during}", exc
        )
    return StoreError(f"redis: lost the connection to Redis at {opts.address} during {during}: {exc}", exc)


@contextmanager
def _bounded(opts: RedisOptions, during: str) -> Iterator[None]:
    """Turn a raw socket's (or a redis-py client's) failure anywhere in ``during`` (its loops stay bare)
    into :func:`_lost`."""
    import redis

    try:
        yield
    except (OSError, hiredis.ProtocolError, redis.ConnectionError, redis.TimeoutError) as exc:
        raise _lost(opts, during, exc) from exc


def _replies(sock: socket.socket, reader: Any, payload: bytes, n: int) -> list[Any]:
    """Send ``payload`` and read its ``n`` replies (outside the measured loops)."""
    sock.sendall(payload)
    replies: list[Any] = []
    while len(replies) < n:
        reply = reader.gets()
        if reply is False:
            reader.feed(sock.recv(65536) or _closed())
        else:
            replies.append(reply)
    return replies


def _raw_socket(opts: RedisOptions) -> tuple[socket.socket, Any]:
    """A blocking socket, AUTH/SELECT done, and a plain hiredis reader. The socket is opened as the
    store's (:func:`open_socket`): connect and TLS bounded by ``socket_connect_timeout``, then every wait
    by ``socket_timeout`` in the kernel (``SO_RCVTIMEO``/``SO_SNDTIMEO``), so a round trip stays two
    system calls, as with no timeout at all: the cheapest bounded wait. A wait that expires raises
    ``BlockingIOError`` (``TimeoutError`` over TLS) out of the loop that waited, and :func:`redis_rows`
    names the group. Raises :class:`StoreError` when it cannot connect or the handshake gets no reply."""
    sock = open_socket(opts)
    reader = hiredis.Reader()
    for name, cmd in opts.handshake():
        try:
            (reply,) = _replies(sock, reader, cmd, 1)
        except (OSError, hiredis.ProtocolError) as exc:
            sock.close()
            raise _lost(opts, f"the raw socket's {name}", exc) from exc
        if isinstance(reply, ReplyError):
            sock.close()
            raise StoreError(f"redis: {name} failed on {opts.address}: {reply}")
    return sock, reader


def _probe(sock: socket.socket, reader: Any, payload: bytes, n: int) -> None:
    """Send a raw ceiling's payload once and check its ``n`` replies: a ceiling that measured error
    replies (a NOSCRIPT, say) would mean nothing. Outside the measured loops, which stay bare."""
    errors = [r for r in _replies(sock, reader, payload, n) if isinstance(r, ReplyError)]
    if errors:
        raise RuntimeError(f"redis: the raw ceiling's command got {errors[0]}")


def _raw_one(sock: socket.socket, reader: Any, payload: bytes) -> Callable[[int], None]:
    _probe(sock, reader, payload, 1)

    def run(n: int) -> None:
        send, recv, feed, gets = sock.sendall, sock.recv, reader.feed, reader.gets
        for _ in range(n):
            send(payload)
            reply = gets()
            while reply is False:
                feed(recv(65536) or _closed())
                reply = gets()

    return run


def _raw_batch(sock: socket.socket, reader: Any, payload: bytes, batch: int) -> Callable[[int], None]:
    _probe(sock, reader, payload, batch)

    def run(n: int) -> None:
        send, recv, feed, gets = sock.sendall, sock.recv, reader.feed, reader.gets
        for _ in range(max(1, n // batch)):
            send(payload)
            got = 0
            while got < batch:
                if gets() is False:
                    feed(recv(65536) or _closed())
                else:
                    got += 1

    return run


def least_client(
    sock: socket.socket, reader: Any, strategy: Strategy, prefix: str
) -> Callable[[str, int], Decision]:
    """The floor of a Python client's check: the least any library answering the public API must do per
    call on top of the raw loop. It checks the key and cost types, frames the key into the command (the
    head and tail are packed once), makes one round trip on one socket it owns (no pool: one thread),
    and answers the public :class:`~throttlekit.Decision`, built as our paths build it. Our check is
    measured against it and against the raw loop in the same run."""
    t = load_manifest()[strategy.check_transform]
    params = tuple(strategy.params)
    head = evalsha_head(t, len(params) + 2)
    tail = b"\r\n" + bulk(SERVER_TIME) + b"".join(map(bulk, params))
    tail1 = tail + bulk(1)  # the common cost, packed once, as our packer does
    send, recv, feed, gets = sock.sendall, sock.recv, reader.feed, reader.gets
    kp = prefix + ":"

    def check(key: str, cost: int = 1) -> Decision:
        if key.__class__ is not str or cost.__class__ is not int or cost <= 0:
            raise TypeError("key must be a str and cost a positive int")
        kb = (kp + key).encode()
        send(b"".join((head, b"$%d\r\n" % len(kb), kb, tail1 if cost == 1 else tail + bulk(cost))))
        reply = gets()
        while reply is False:
            feed(recv(65536) or _closed())
            reply = gets()
        if reply.__class__ is ReplyError:  # as our store looks at every reply
            raise RuntimeError(f"redis: {reply}")
        return decision_of(reply)

    return check


def least_client_many(
    sock: socket.socket, reader: Any, strategy: Strategy, prefix: str
) -> Callable[[list[str]], list[Decision]]:
    """The floor of a Python client's ``check_many``: the batch framed per call from the keys (the cheapest
    framing measured: one f-string per key, one join, one encode), one write, the replies read by one
    C-level loop, one public :class:`~throttlekit.Decision` per reply. No validation, no pool; ASCII keys
    (a character is a byte, as in the benchmark's keys)."""
    t = load_manifest()[strategy.check_transform]
    params = tuple(strategy.params)
    hs = evalsha_head(t, len(params) + 2).decode()
    ts = (bulk(SERVER_TIME) + b"".join(map(bulk, params)) + bulk(1)).decode()
    send, recv, feed, gets = sock.sendall, sock.recv, reader.feed, reader.gets
    kp = prefix + ":"

    def many(keys: list[str]) -> list[Decision]:
        text = "".join([f"{hs}${len(k) + len(kp)}\r\n{kp}{k}\r\n{ts}" for k in keys])
        if not text.isascii():
            raise ValueError("the floor frames ASCII keys only")
        send(text.encode())
        replies: list[Any] = []
        while len(replies) < len(keys):
            feed(recv(65536) or _closed())
            replies.extend(iter(gets, False))
        if ReplyError in set(map(type, replies)):  # as our store looks at every reply
            raise RuntimeError(f"redis: {next(r for r in replies if isinstance(r, ReplyError))}")
        return list(map(decision_of, replies))

    return many


def _loop_least(check: Callable[[str, int], Decision], key: str) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            check(key, 1)

    return run


def _loop_least_many(many: Callable[[list[str]], list[Decision]], keys: list[str]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(max(1, n // len(keys))):
            many(keys)

    return run


def _loop_check(limiter: Limiter, key: str) -> Callable[[int], None]:
    check = limiter.check

    def run(n: int) -> None:
        for _ in range(n):
            check(key)

    return run


def _many(limiter: Limiter, keys: list[str]) -> Callable[[int], None]:
    many = limiter.check_many

    def run(n: int) -> None:
        for _ in range(max(1, n // len(keys))):
            many(keys)

    return run


def _amany(loop: asyncio.AbstractEventLoop, limiter: AsyncLimiter, keys: list[str]) -> Callable[[int], None]:
    many = limiter.check_many

    async def go(calls: int) -> None:
        for _ in range(calls):
            await many(keys)

    def run(n: int) -> None:
        loop.run_until_complete(go(max(1, n // len(keys))))

    return run


def _limits_rows(opts: RedisOptions, prefix: str, n: int, rounds: int, store_url: str) -> list[Row]:
    """``limits``' Redis strategies beside our fixed window, for orientation. ``limits`` talks through a
    redis-py client on the URL's own options, retries off (:meth:`RedisOptions.redis_py_client`): its waits
    are bounded by ``socket_timeout`` as ours are (from the URL alone redis-py would wait forever)."""
    from limits import RateLimitItemPerHour
    from limits.storage import RedisStorage
    from limits.strategies import (
        FixedWindowRateLimiter,
        MovingWindowRateLimiter,
        SlidingWindowCounterRateLimiter,
    )

    client = opts.redis_py_client()
    storage = RedisStorage("redis://", connection_pool=client.connection_pool, key_prefix=prefix)
    item, moving = RateLimitItemPerHour(1_000_000_000), RateLimitItemPerHour(1000)

    def hit(lim: Any, it: Any) -> Callable[[int], None]:
        def run(k: int) -> None:
            for _ in range(k):
                lim.hit(it, "bench")

        return run

    ours = Limiter(STRATEGIES["fixedWindow"], store=store_url)
    group = "redis vs limits (informative)"
    try:
        with _bounded(opts, group):
            return _against(
                group,
                ("limits FixedWindow (redis)", hit(FixedWindowRateLimiter(storage), item)),
                {
                    "throttlekit fixedWindow check": _loop_check(ours, "bench-vs-limits"),
                    "limits SlidingWindowCounter (redis)": hit(
                        SlidingWindowCounterRateLimiter(storage), item
                    ),
                    "limits MovingWindow (redis, limit 1000)": hit(MovingWindowRateLimiter(storage), moving),
                },
                n,
                rounds,
            )
    finally:
        ours.close()
        client.close()


def redis_rows(
    url: str, n: int = 3_000, rounds: int = 5, batch: int = 100, progress: Progress | None = None
) -> list[Row]:
    """Every Redis row (see the module docstring); ``progress`` gets one line per group.

    Raises :class:`StoreError` when Redis cannot be reached, or stops answering (or closes the connection)
    mid-run: no wait lasts longer than the URL's ``socket_timeout`` (1 s by default)."""
    say = progress or (lambda _line: None)
    prefix = f"tkbench-{uuid.uuid4().hex[:8]}"
    opts = redis_options(url)
    store_url = url + ("&" if "?" in url else "?") + f"prefix={prefix}"
    store = open_sync(store_url)
    try:
        store.delete(f"{prefix}:probe")  # reachable, or a StoreError now
        sock, reader = _raw_socket(opts)
    except BaseException:
        store.close()
        raise
    loop = asyncio.new_event_loop()
    astore = open_async(store_url)
    rows: list[Row] = []
    # many short interleaved rounds: a loaded machine's noise hits every contender alike
    rounds, n = rounds * _SPLIT, max(batch, n // _SPLIT - (n // _SPLIT) % batch)
    groups = [*(f"redis {s}" for s in STRATEGIES), "redis async check_many", "redis vs limits"]
    step = 0

    def next_group(name: str) -> None:
        nonlocal step
        step += 1
        say(f"[{step}/{len(groups)}] {name} ...")

    try:
        for name, strategy in STRATEGIES.items():
            next_group(f"redis {name}")
            limiter = Limiter(strategy, store=store)
            limiter.check(f"load-{name}")  # SCRIPT LOAD now: every contender then runs the script itself

            def command(key: str, strategy: Strategy = strategy) -> bytes:
                return raw_command(strategy, f"{prefix}:{key}")

            group = f"redis {name}: check, one thread"
            with _bounded(opts, group):  # the raw socket's failure, once per group: its loops stay bare
                rows += _against(
                    group,
                    (
                        "ceiling: raw socket + hiredis, same EVALSHA bytes",
                        _raw_one(sock, reader, command(f"raw-{name}")),
                    ),
                    {
                        "floor: the least Python client (key framed per call, the public Decision)": (
                            _loop_least(least_client(sock, reader, strategy, prefix), f"least-{name}")
                        ),
                        f"throttlekit {name} check": _loop_check(limiter, f"bench-{name}"),
                    },
                    n,
                    rounds,
                )
            keys = [f"{name}-{i}" for i in range(batch)]
            group = f"redis {name}: check_many({batch})"
            with _bounded(opts, group):
                rows += _against(
                    group,
                    (
                        f"ceiling: raw socket, the same {batch} EVALSHAs in one write",
                        _raw_batch(sock, reader, b"".join(command(f"raw-{k}") for k in keys), batch),
                    ),
                    {
                        "floor: the least Python client (the batch framed per call, the public Decisions)": (
                            _loop_least_many(least_client_many(sock, reader, strategy, prefix), keys)
                        ),
                        f"throttlekit {name} check_many({batch})": _many(limiter, keys),
                    },
                    n,
                    rounds,
                )

        next_group("redis async check_many")
        name = "gcra"
        keys = [f"async-{i}" for i in range(batch)]
        rows += _against(
            f"redis {name}: async check_many({batch}), pipelined store",
            (f"sync Limiter.check_many({batch})", _many(Limiter(STRATEGIES[name], store=store), keys)),
            {
                f"AsyncLimiter.check_many({batch}) (PipelinedRedisStore)": _amany(
                    loop, AsyncLimiter(STRATEGIES[name], store=astore), keys
                )
            },
            n,
            rounds,
        )

        next_group("redis vs limits")
        try:
            rows += _limits_rows(opts, prefix, n, rounds, store_url)
        except ImportError:
            say("  (limits not installed: skipped)")
    finally:
        loop.run_until_complete(astore.aclose())
        loop.close()
        sock.close()
        try:
            _clean_up(opts, prefix, say)
        finally:
            store.close()
    return rows


def _clean_up(opts: RedisOptions, prefix: str, say: Progress) -> None:
    """Delete the run's keys with a redis-py client on the URL's own options (its timeouts, retries off:
    :meth:`RedisOptions.redis_py_client`): a Redis gone silent leaves them, said so, and the run's own
    error, if any, is the one raised."""
    import redis

    try:
        with opts.redis_py_client() as client:
            for k in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(k)
            for k in client.scan_iter(match="LIMITS:*tkbench*", count=1000):
                client.delete(k)
    except redis.RedisError as exc:
        say(f"  (the run's keys {prefix}* were not deleted: {exc})")
