"""The sync Postgres pool (no server needed: fake connections): reuse, hand-over to a waiter, bounds."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from throttlekit import StoreError
from throttlekit.stores._pgpool import Pool


class _Conn:
    """What the pool touches of a psycopg connection: ``pgconn.finish()`` when it drops one."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.finished = False
        self.pgconn = self

    def finish(self) -> None:
        self.finished = True


def _pool(size: int, timeout_s: float = 5.0) -> tuple[Pool, list[_Conn]]:
    made: list[_Conn] = []

    def connect() -> Any:
        made.append(_Conn(len(made)))
        return made[-1]

    return Pool(connect, size, timeout_s), made


def test_an_idle_connection_is_reused_and_a_broken_one_dropped() -> None:
    pool, made = _pool(2)
    conn, fresh = pool.acquire()
    assert fresh and conn is made[0]
    pool.release(conn, broken=False)
    again, fresh = pool.acquire()
    assert again is conn and not fresh and len(made) == 1
    pool.release(again, broken=True)
    assert conn.finished
    third, fresh = pool.acquire()
    assert fresh and third is made[1]


def test_a_release_hands_the_connection_to_a_waiter() -> None:
    pool, made = _pool(1)
    conn, _ = pool.acquire()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire()))
    waiter.start()
    for _ in range(5000):  # until the waiter has counted itself (bounded)
        if pool._waiting:
            break
        threading.Event().wait(0.001)
    assert pool._waiting == 1 and not got
    pool.release(conn, broken=False)
    waiter.join(5)
    assert got == [(conn, False)] and len(made) == 1


def test_an_exhausted_pool_fails_after_its_timeout() -> None:
    pool, _ = _pool(1, timeout_s=0.05)
    pool.acquire()
    with pytest.raises(StoreError, match=r"all 1 pooled connections busy for 0\.05 s"):
        pool.acquire()


def test_discard_idle_and_close() -> None:
    pool, made = _pool(2)
    a, _ = pool.acquire()
    b, _ = pool.acquire()
    pool.release(a, broken=False)
    pool.release(b, broken=False)
    pool.discard_idle()
    assert a.finished and b.finished
    c, fresh = pool.acquire()  # both slots are free again
    d, fresh2 = pool.acquire()
    assert fresh and fresh2 and len(made) == 4
    pool.close()
    pool.release(c, broken=False)  # a connection back after the close is dropped, not pooled
    assert c.finished and not d.finished
    with pytest.raises(StoreError, match="postgres store is closed"):
        pool.acquire()
