"""``tk bench``'s Redis rows: every row of ours is measured next to its ceiling in the same run, with the
median ratio and its spread over rounds, and a progress line per group (a smoke run, not a measurement)."""

from __future__ import annotations

import pytest

from tests._support.env import REAL_REDIS, REDIS_URL


@pytest.mark.skipif(REAL_REDIS is None, reason="needs a real Redis")
def test_redis_rows_pair_each_path_with_its_ceiling() -> None:
    import redis

    from throttlekit._bench import STRATEGIES
    from throttlekit._bench_redis import redis_rows

    with redis.Redis.from_url(REDIS_URL) as client:
        client.script_flush()  # a fresh Redis: the raw ceilings and floors must not meet NOSCRIPT
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
