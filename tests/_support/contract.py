"""The store-conformance suite (STYLE P15): every store passes the same guarantees.

A test module subclasses :class:`StoreContract` and provides a ``make_store`` fixture returning
``make(clock=None, **kw) -> store``. Guarantees: a missing key is a fresh state, never an error; state
persists between calls; TTLs expire on the store's clock (a manual clock here: nothing sleeps); many
threads updating one key keep an exact fixed-window count; the async API does too; ``close`` is
idempotent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import throttlekit as tk
from throttlekit.stores.base import join_prefix

FW = "fixed_window"  # ARGV: now_ms, limit, window_ms, cost
HOUR = 3_600_000


def _key(store: Any, name: str) -> str:
    return join_prefix(store.prefix) + name


class StoreContract:
    #: False for stores whose TTL clock is not injectable (Redis expires on its own clock).
    manual_ttl = True
    #: True when the store object has the async API (aeval/aclose).
    has_async = True
    #: True when two store objects on the same backend see the same state (False: the memory store).
    shared_state = True
    threads = 8
    per_thread = 40

    def test_missing_key_is_fresh_state(self, make_store: Callable[..., Any]) -> None:
        s = make_store(tk.ManualClock(1_000))
        try:
            k = _key(s, "missing")
            assert list(s.eval("fixed_window_peek", [k], 1_000, [5, 1000])) == [1, 5, 5, 2000, 0]
            s.delete(k)  # deleting a missing key is a no-op
            assert list(s.eval(FW, [k], 1_000, [5, 1000, 1])) == [1, 5, 4, 2000, 0]
        finally:
            s.close()

    def test_state_persists_and_delete_forgets(self, make_store: Callable[..., Any]) -> None:
        s = make_store(tk.ManualClock(1_000))
        try:
            lim = tk.Limiter(tk.SlidingWindowLog(3, 1000), store=s, clock=tk.ManualClock(5_000))
            assert [lim.check("a").allowed for _ in range(4)] == [True, True, True, False]
            assert lim.peek("a").remaining == 0
            lim.reset("a")
            assert lim.check("a").remaining == 2
        finally:
            s.close()

    def test_ttl_expiry_on_manual_clock(self, make_store: Callable[..., Any]) -> None:
        if not self.manual_ttl:
            return self._ttl_native(make_store)
        clock = tk.ManualClock(0)
        s = make_store(clock)
        try:
            k = _key(s, "ttl")
            # now_ms fixed at 0: only the store's clock moves, so only expiry can reset the count
            assert s.eval(FW, [k], 0, [1, 1000, 1])[0] == 1  # state lives until clock 1000
            clock.set(1_000)
            assert s.eval(FW, [k], 0, [1, 1000, 1])[0] == 0  # live while clock <= deadline
            clock.set(1_001)
            assert s.eval(FW, [k], 0, [1, 1000, 1])[0] == 1  # expired: fresh state
        finally:
            s.close()

    def _ttl_native(self, make_store: Callable[..., Any]) -> None:
        s = make_store(None)
        try:
            k = _key(s, "ttl")
            assert s.eval(FW, [k], 0, [1, 60_000, 1])[0] == 1
            assert 0 < s.client.pttl(k) <= 60_000
        finally:
            s.close()

    def _hammer(self, stores: list[Any], key: str) -> None:
        limit = self.threads * self.per_thread // 2
        admitted = [0] * self.threads
        errors: list[BaseException] = []
        start = threading.Barrier(self.threads)

        def worker(i: int) -> None:
            s = stores[i % len(stores)]
            start.wait()
            for _ in range(self.per_thread):
                try:
                    admitted[i] += s.eval(FW, [key], 1_000, [limit, HOUR, 1])[0]
                except BaseException as exc:  # reported below
                    errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        assert sum(admitted) == limit
        assert stores[0].eval("fixed_window_peek", [key], 1_000, [limit, HOUR])[2] == 0

    def test_concurrent_threads_one_store_keep_exact_count(self, make_store: Callable[..., Any]) -> None:
        s = make_store(None)
        try:
            self._hammer([s], _key(s, "hot"))
        finally:
            s.close()

    def test_concurrent_clients_keep_exact_count(self, make_store: Callable[..., Any]) -> None:
        """One store object per thread (as separate processes would have): only the store's own guard
        (advisory lock, version CAS, Redis atomicity) keeps the count exact."""
        if not self.shared_state:
            return
        stores = [make_store(None) for _ in range(self.threads)]
        try:
            self._hammer(stores, _key(stores[0], "hot2"))
        finally:
            for s in stores:
                s.close()

    def test_async_concurrent_keep_exact_count(self, make_store: Callable[..., Any]) -> None:
        if not self.has_async:
            return
        s = make_store(None)
        k = _key(s, "ahot")
        limit, calls = 30, 60

        async def main() -> list[Any]:
            try:
                return list(
                    await asyncio.gather(*(s.aeval(FW, [k], 1_000, [limit, HOUR, 1]) for _ in range(calls)))
                )
            finally:
                await s.aclose()

        replies = asyncio.run(main())
        assert sum(r[0] for r in replies) == limit
        assert sorted(r[2] for r in replies if r[0] == 1) == list(range(limit))  # each remaining exactly once

    def test_eval_many_keeps_input_order(self, make_store: Callable[..., Any]) -> None:
        s = make_store(tk.ManualClock(0))
        try:
            a, b = _key(s, "m-a"), _key(s, "m-b")
            s.eval(FW, [a], 0, [3, 1000, 2])
            out = s.eval_many(FW, [[a], [b], [a]], 0, [3, 1000, 1])
            assert [list(r)[:3] for r in out] == [[1, 3, 0], [1, 3, 2], [0, 3, 0]]
        finally:
            s.close()

    def test_bind_with_several_per_call_argv(self, make_store: Callable[..., Any]) -> None:
        """``bind(name, params)`` fixing fewer ARGV than all but the last: the call passes the rest
        (``wfe_check``: the policy's constants bound, tenant/weight/cost/budget per call), same as eval."""
        from throttlekit.fairness import wfe_args

        s = make_store(tk.ManualClock(1_000))
        try:
            a, b = _key(s, "wfe-a"), _key(s, "wfe-b")
            run = s.bind("wfe_check", (HOUR, 10, 100, 0))
            replies = [list(run(a, 1_000, t, 3, 2, -1)) for t in ("x", "y", "x")]
            expect = [
                list(s.eval("wfe_check", [b], 1_000, wfe_args(HOUR, 10, 100, 0, t, 3, 2, -1))) for t in "xyx"
            ]
            assert replies == expect and replies[0][3] == 1  # admitted, the same reply as eval
            if self.has_async:

                async def main() -> list[Any]:
                    arun = s.abind("wfe_check", (HOUR, 10, 100, 0))
                    return list(await arun(a, 1_000, "y", 1, 1, -1))

                assert asyncio.run(main()) == list(
                    s.eval("wfe_check", [b], 1_000, wfe_args(HOUR, 10, 100, 0, "y", 1, 1, -1))
                )
        finally:
            for k in ("wfe-a", "wfe-b"):
                s.delete(_key(s, k))
            s.close()

    def test_close_is_idempotent(self, make_store: Callable[..., Any]) -> None:
        s = make_store(None)
        s.eval(FW, [_key(s, "c")], 0, [1, 1000, 1])
        s.close()
        s.close()
        if self.has_async:
            asyncio.run(s.aclose())
