"""``tk bench``'s Redis rows: every row of ours is measured next to its ceiling in the same run, with the
median ratio and its spread over rounds, and a progress line per group (a smoke run, not a measurement)."""

from __future__ import annotations

import threading
import time
from typing import Any, NamedTuple

import pytest

from tests._support.env import REDIS_URL, real_redis
from tests._support.services import Proxy
from tests._support.watchdog import fails_fast
from throttlekit._bench import STRATEGIES


def test_redis_rows_pair_each_path_with_its_ceiling() -> None:
    from throttlekit._bench import STRATEGIES
    from throttlekit._bench_redis import redis_rows

    real_redis().script_flush()  # a fresh Redis: the raw ceilings and floors must not meet NOSCRIPT
    lines: list[str] = []
    rows = redis_rows(REDIS_URL, n=200, rounds=1, progress=lines.append)
    assert len(lines) == len(STRATEGIES) + 2 and lines[0].startswith("[1/")
    groups = {r.group for r in rows}
    for name in STRATEGIES:
        assert f"redis {name}: check, one thread" in groups
        assert f"redis {name}: check_many(100)" in groups
    ours = [r for r in rows if r.baseline]
    assert ours and all(r.spread is not None and r.ratio is not None for r in ours)
    for r in ours:
        assert r.spread is not None and r.ratio is not None
        assert r.spread[0] <= r.ratio <= r.spread[1]
        ceiling = next(c for c in rows if c.group == r.group and c.name == r.baseline)
        assert ceiling.ratio is None and ceiling.per_sec > 0
    checks = [r for r in ours if r.group.endswith("check, one thread")]
    assert all(r.baseline.startswith("ceiling: raw socket") for r in checks)
    floors = [r for r in ours if r.name.startswith("floor: the least Python client")]
    assert len(floors) == 2 * len(STRATEGIES)  # one per check and check_many group, beside ours


#: One allowed gcra decision as Redis answers it.
_ALLOW = b"*5\r\n:1\r\n:10\r\n:9\r\n:123\r\n:0\r\n"


class _Wire:
    """A socket stand-in for the floors: records what is sent, answers ``replies`` allowed decisions
    per read."""

    def __init__(self, replies: int = 1) -> None:
        self.sent: list[bytes] = []
        self.replies = replies

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)

    def recv(self, _n: int) -> bytes:
        return _ALLOW * self.replies


def test_the_least_client_floor_sends_our_bytes_and_answers_a_decision() -> None:
    """The floor row does no less than the API needs: the very bytes of the raw ceiling (and of our store),
    read into the public Decision; bad input is refused."""
    import hiredis

    from throttlekit import Decision, Gcra
    from throttlekit._bench_redis import least_client, raw_command

    strategy, wire = Gcra(10, "1s"), _Wire()
    check = least_client(wire, hiredis.Reader(), strategy, "p")  # type: ignore[arg-type]
    assert check("k", 1) == Decision(True, 10, 9, 123, 0)
    assert wire.sent == [raw_command(strategy, "p:k")]
    check("ключ", 3)
    assert wire.sent[1].endswith(b"$1\r\n3\r\n") and "p:ключ".encode() in wire.sent[1]
    with pytest.raises(TypeError):
        check(b"k", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check("k", 0)


def test_the_batch_floor_sends_the_raw_batch_and_answers_decisions() -> None:
    import hiredis

    from throttlekit import Decision, Gcra
    from throttlekit._bench_redis import least_client_many, raw_command

    strategy, wire = Gcra(10, "1s"), _Wire(replies=2)  # both replies in one read
    many = least_client_many(wire, hiredis.Reader(), strategy, "p")  # type: ignore[arg-type]
    assert many(["a", "b"]) == [Decision(True, 10, 9, 123, 0)] * 2
    assert wire.sent == [raw_command(strategy, "p:a") + raw_command(strategy, "p:b")]
    with pytest.raises(ValueError):
        many(["ключ"])


# -- a Redis that stops answering, or closes, mid-run: a clear error within the timeout, never a hang --

#: The bench's first strategy: its groups are the first the faults below land in.
_FIRST = next(iter(STRATEGIES))

#: Where the proxy stops the raw socket's connection: the ``nth`` chunk carrying ``match`` (counted over
#: every connection of the run, the store's included), and the group the error must name.
_FAULTS = {
    "handshake": (b"SETNAME", 2, "the raw socket's CLIENT SETNAME"),  # the store's is 1st
    "ceiling-check": (b":raw-", 2, f"redis {_FIRST}: check, one thread"),  # 1st: the probe
    "floor-check": (b":least-", 1, f"redis {_FIRST}: check, one thread"),
    "ceiling-check_many": (f":raw-{_FIRST}-0\r\n".encode(), 2, f"redis {_FIRST}: check_many(100)"),
    "floor-check_many": (f":{_FIRST}-0\r\n".encode(), 1, f"redis {_FIRST}: check_many(100)"),
    "limits": (b"LIMITER/bench/", 1, "redis vs limits (informative)"),  # limits' redis-py client
}


class _Target(NamedTuple):
    """The real test Redis, to be reached through a :class:`Proxy` on loopback."""

    port: int
    cred: str
    db: int

    def through(self, proxy: Proxy) -> tuple[str, str]:
        """The URL through ``proxy`` (a 0.5 s reply timeout; a client name, so that every connection's
        handshake has a command, CLIENT SETNAME, whatever the db) and the address errors name."""
        query = "socket_timeout=0.5&client_name=tkbench-faults"
        return (
            f"redis://{self.cred}127.0.0.1:{proxy.port}/{self.db}?{query}",
            f"127.0.0.1:{proxy.port}/{self.db}",
        )


@pytest.fixture
def target() -> _Target:
    from throttlekit.stores._redisconn import redis_options

    real_redis()
    opts = redis_options(REDIS_URL)
    assert opts.host in ("127.0.0.1", "localhost"), "the proxy forwards to 127.0.0.1"
    cred = f"{opts.username or ''}:{opts.password}@" if opts.password is not None else ""
    return _Target(opts.port, cred, opts.db)


@pytest.mark.parametrize("then", ["freeze", "close"])
@pytest.mark.parametrize("where", list(_FAULTS))
def test_a_redis_that_stops_mid_run_stops_the_bench_with_a_clear_error(
    target: _Target, where: str, then: str
) -> None:
    """Every raw wait (the handshake, the ceilings' and the floors' loops) is bounded by the URL's
    ``socket_timeout``, and a peer that closes is an error: ``redis_rows`` raises a StoreError naming the
    address, the timeout and the group, well within 20 s (it used to wait, or spin, forever; ``limits``'
    redis-py client waited forever too)."""
    from throttlekit._bench_redis import redis_rows

    match, nth, group = _FAULTS[where]
    proxy = Proxy(target.port, match=match, nth=nth, then=then)
    try:
        url, address = target.through(proxy)
        if then == "freeze":
            expected = f"redis: no reply from Redis at {address} within 0.5 s during {group}"
        else:
            expected = f"redis: lost the connection to Redis at {address} during {group}: "
        start = time.monotonic()
        exc = fails_fast(lambda: redis_rows(url, n=200, rounds=1), expected, within=20)
        assert time.monotonic() - start < 20
        if then == "close":
            assert "connection closed" in str(exc).lower(), str(exc)
    finally:
        proxy.stop()


def test_tk_bench_says_which_group_redis_stopped_answering_in(target: _Target) -> None:
    """``tk bench`` prints that error as one line and exits 1, as for an unreachable Redis: no traceback."""
    from click.testing import CliRunner

    from throttlekit.cli import main

    proxy = Proxy(target.port, match=b":least-")
    try:
        url, address = target.through(proxy)
        box: dict[str, Any] = {}

        def run() -> None:
            box["res"] = CliRunner().invoke(main, ["bench", "--quick", "--redis-url", url])

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(30)  # the embedded tables come first (~2 s)
        assert not worker.is_alive(), "tk bench hangs"
    finally:
        proxy.stop()
    res = box["res"]
    assert res.exit_code == 1, res.output
    assert [line for line in res.output.splitlines() if line.startswith("Error:")] == [
        f"Error: Redis at {url}: redis: no reply from Redis at {address} within 0.5 s during "
        f"redis {_FIRST}: check, one thread (or pass --no-redis)"
    ], res.output
    assert "Traceback" not in res.output
