"""The codecs and the snapshot executor, on an in-memory transport (no server needed)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from typing import Any

import pytest

import throttlekit as tk
from throttlekit._lupa import RUNTIMES
from throttlekit.stores._codecs import CODECS, CodecError, decode, encode, encode_string
from throttlekit.stores._snapshot import Change, Record, SnapshotStore, _KeyLocks
from throttlekit.vectors import bundled_vector_files, run_suites


class _DictTxn:
    def __init__(self, store: DictStore, keys: Sequence[str]) -> None:
        self.store = store
        self.records = [store.rows.get(k) for k in keys]  # expired ones included: the executor decides

    def commit(self, changes: Sequence[Change]) -> bool:
        with self.store.lock:
            for c in changes:
                if self.store.rows.get(c.key) != c.read and c.read is not None:
                    return False
            for c in changes:
                self.store.writes += 1
                if c.state is None:
                    self.store.rows.pop(c.key, None)
                else:
                    v = 0 if c.read is None else c.read.version + 1
                    self.store.rows[c.key] = Record(c.state, c.expires_at_ms, v)
        return True

    def close(self) -> None:
        pass


class _ADictTxn:
    """The asyncio face of a :class:`_DictTxn`."""

    def __init__(self, txn: _DictTxn) -> None:
        self.txn = txn
        self.records = txn.records

    async def commit(self, changes: Sequence[Change]) -> bool:
        return self.txn.commit(changes)

    async def close(self) -> None:
        self.txn.close()


class _ADict:
    def __init__(self, store: DictStore) -> None:
        self.store = store

    async def begin(self, keys: Sequence[str], write: bool) -> _ADictTxn:
        return _ADictTxn(self.store.begin(keys, write))

    async def delete(self, key: str) -> None:
        self.store.delete(key)


class DictStore(SnapshotStore):
    """The smallest StateStore: a dict (single process), to test the executor alone."""

    def __init__(self, clock: Any = None, runtime: str | None = None) -> None:
        super().__init__(clock=clock, prefix="", max_retries=3, runtime=runtime)
        self.rows: dict[str, Record] = {}
        self.lock = threading.Lock()
        self.writes = 0
        self._transport = self

    def begin(self, keys: Sequence[str], write: bool) -> _DictTxn:
        return _DictTxn(self, keys)

    def delete(self, key: str) -> None:
        self.rows.pop(key, None)

    async def _atransport(self) -> _ADict:
        return _ADict(self)

    def close(self) -> None:
        pass


def test_golden_vectors_on_the_snapshot_executor() -> None:
    results = run_suites(bundled_vector_files(), lambda clock: DictStore(clock))
    assert results and all(r.passed for r in results), [
        str(r.mismatches[:1] or r.error) for r in results if not r.passed
    ]


def test_read_only_and_unchanged_state_never_write() -> None:
    s = DictStore(tk.ManualClock(0))
    lim = tk.Limiter(tk.Gcra(1, 1000), store=s, clock=tk.ManualClock(0))
    lim.peek("k")
    lim.forecast("k")
    assert s.writes == 0 and s.rows == {}
    assert lim.check("k").allowed
    assert s.writes == 1
    assert not lim.check("k").allowed  # a denial changes nothing: no write
    assert s.writes == 1


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_a_transform_error_mid_decision_writes_nothing_and_leaves_the_engine_empty(runtime: str) -> None:
    """The decision step (load, run, dump, flush in one call into Lua) after a script fault: a
    ScriptError without the Lua traceback, no write, an empty engine, and the next decision starts from
    the stored state alone."""
    s = DictStore(tk.ManualClock(1_000), runtime=runtime)
    lim = tk.Limiter(tk.Gcra(10, 1000), store=s)
    assert lim.check("k").remaining == 9
    stored, writes = s.rows["k"], s.writes
    with pytest.raises(tk.ScriptError, match="arithmetic") as info:
        s.eval("gcra", ["k"], -1, ["not a number", 10, 10, 1])  # the Lua fails after loading "k"
    assert info.value.transform == "gcra" and "stack traceback" not in str(info.value)
    assert s.rows["k"] == stored and s.writes == writes
    assert s._exec.engine.key_count() == 0
    assert lim.check("k").remaining == 8  # from the stored state: nothing of the failed run was kept


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_unchanged_hash_and_sorted_set_state_is_not_written(runtime: str) -> None:
    """The step reports a key as loaded when the transform left it as it was (a denial of a token
    bucket, a log at its limit): no write, on both runtimes."""
    s = DictStore(tk.ManualClock(1_000), runtime=runtime)
    for strategy in (tk.TokenBucket(2, 0.001), tk.SlidingWindowLog(2, 60_000)):
        lim = tk.Limiter(strategy, store=s)
        key = type(strategy).__name__
        assert lim.check(key).allowed and lim.check(key).allowed
        writes = s.writes
        assert not lim.check(key).allowed
        assert s.writes == writes, key
        assert s._exec.engine.key_count() == 0


def test_bound_calls_match_eval_and_a_read_only_one_never_writes() -> None:
    """``bind``/``abind`` (the limiter's hot path) look the transform up once and run exactly
    ``eval``/``aeval``: same replies, same writes; an unknown transform fails at bind time."""
    s = DictStore(tk.ManualClock(1_000))
    check = s.bind("gcra", [1000, 10, 10])
    peek = s.bind("gcra_peek", [1000, 10])  # ARGV [now, period, limit, burst]: burst is the "last"
    assert list(check("k", -1, 3)) == [1, 10, 7, 1300, 0]
    assert s.writes == 1
    assert list(peek("k", -1, 10)) == list(s.eval("gcra_peek", ["k"], -1, [1000, 10, 10]))
    assert s.writes == 1

    async def both() -> None:
        acheck, apeek = s.abind("gcra", [1000, 10, 10]), s.abind("gcra_peek", [1000, 10])
        assert list(await acheck("k", -1, 1)) == [1, 10, 6, 1400, 0]
        assert list(await apeek("k", -1, 10)) == list(await s.aeval("gcra_peek", ["k"], -1, [1000, 10, 10]))

    asyncio.run(both())
    assert s.writes == 2
    with pytest.raises(tk.ScriptError, match="unknown transform 'nope'"):
        s.bind("nope", [])


def test_a_lost_race_retries_then_raises_concurrent_update() -> None:
    s = DictStore(tk.ManualClock(0))
    s.eval("fixed_window", ["k"], 0, [10, 1000, 1])

    class Racing(_DictTxn):
        def commit(self, changes: Sequence[Change]) -> bool:
            self.store.rows["k"] = Record(self.store.rows["k"].state, 1000, self.store.rows["k"].version + 1)
            return super().commit(changes)

    s.begin = lambda keys, write: Racing(s, keys)  # type: ignore[method-assign]
    with pytest.raises(tk.ConcurrentUpdateError) as info:
        s.eval("fixed_window", ["k"], 0, [10, 1000, 1])
    assert info.value.attempts == 4 and info.value.key == "k"
    assert isinstance(info.value, tk.StoreError)


def test_the_clock_is_read_after_the_state_so_now_never_precedes_it() -> None:
    """A decision delayed between reading its clock and reading the state (a lock wait, a slow GetItem)
    must not apply its old ``now`` to state a later writer left. Here writer B runs entirely inside A's
    read, just after a fixedWindow boundary: reading the clock before the read (the old order) made A
    reset B's new window to a fresh count of the old window, expiring at once, and the new window then
    admitted limit + 1. Reading it after the read gives A the later time: the window keeps its count."""
    clock = tk.ManualClock(999)
    store = DictStore(clock)
    other = DictStore(clock)
    other.rows = store.rows  # a second process on the same rows
    lim = tk.Limiter(tk.FixedWindow(2, 1000), store=store)  # SERVER_TIME: the store's clock decides
    lim_b = tk.Limiter(tk.FixedWindow(2, 1000), store=other)
    real_begin = store.begin

    def slow_begin(keys: Sequence[str], write: bool) -> _DictTxn:
        if clock.now_ms() == 999:  # A is "delayed": B crosses the boundary and decides meanwhile
            clock.set(1000)
            assert lim_b.check("k").allowed
        return real_begin(keys, write)

    store.begin = slow_begin  # type: ignore[method-assign]
    assert lim.check("k").allowed  # A: in window [1000, 2000) now, the window's second unit
    assert not lim_b.check("k").allowed  # the window is full: 2 of 2
    assert json.loads(store.rows["k"].state) == {"start": 1000, "count": 2}


@pytest.mark.parametrize(
    ("state", "layout", "doc", "slots"),
    [
        ("tat", ("string", "1500.5"), 1500.5, 0),
        ("departure", ("string", "1000"), 1000, 0),
        ("token_bucket", ("hash", {"t": "7", "l": "10000"}), {"tokens": 7, "last": 10000}, 0),
        ("window_count", ("hash", {"s": "0", "c": "3"}), {"start": 0, "count": 3}, 0),
        ("budget", ("hash", {"w": "60000", "s": "12"}), {"w": 60000, "s": 12}, 0),
        ("lease", ("hash", {"c": "2.5", "e": "9000"}), {"credits": 2.5, "expiresAt": 9000}, 0),
        ("lease", ("hash", {"c": "4"}), {"credits": 4, "expiresAt": None}, 0),
        ("ring", ("hash", {"1": "11:2", "2": "2:0.5"}), {"i": [-1, 11, 2], "n": [0, 2, 0.5]}, 2),
        ("log", ("zset", [("500-1", 500.0), ("500-2", 500.0), ("900-1", 900.0)]), [500, 500, 900], 0),
    ],
)
def test_codec_round_trip(state: str, layout: tuple[str, Any], doc: Any, slots: int) -> None:
    assert json.loads(encode(state, layout, slots)) == doc
    assert decode(state, json.dumps(doc), slots) == layout


def test_every_manifest_state_family_has_a_codec() -> None:
    from throttlekit._loader import load_manifest

    assert {t.state for t in load_manifest().values()} <= set(CODECS)


def test_ring_decodes_every_slot_even_from_another_bucket_count() -> None:
    assert json.loads(encode("ring", ("hash", {"7": "7:1"}), 2)) == {"i": [-1] * 7 + [7], "n": [0] * 7 + [1]}


def test_log_members_never_collide_with_new_lua_members() -> None:
    """Regenerated members are "<t>-<rank among equal t>": an entry at `now` is live, so its rank is <= count
    and the Lua's new "<now>-<count+i>" is always a new member, even after a backward clock jump."""
    s = DictStore(tk.ManualClock(0))
    # entries at 0 (to be pruned at now=500 with window 400) and two at 500 already stored
    s.rows["k"] = Record("[0, 500, 500]", None)
    r = s.eval("sliding_window_log", ["k"], 500, [400, 10, 1])
    assert list(r)[:3] == [1, 10, 7]
    assert json.loads(s.rows["k"].state) == [500, 500, 500]


@pytest.mark.parametrize("blob", ["{", "[1, 2", '"x"', "{}"])
def test_corrupt_state_is_a_script_error_naming_the_family(blob: str) -> None:
    s = DictStore(tk.ManualClock(0))
    s.rows["k"] = Record(blob, None)
    with pytest.raises(tk.ScriptError, match="does not decode as 'token_bucket'"):
        s.eval("token_bucket", ["k"], 0, [10, 1, 1])


def test_codec_errors() -> None:
    with pytest.raises(CodecError):
        encode("nope", ("string", "1"))
    with pytest.raises(CodecError):
        encode("token_bucket", ("hash", {"t": "1", "x": "2"}))
    with pytest.raises(CodecError):
        decode("ring", '{"i": [1], "n": []}')


def test_keylocks_queue_one_key_and_forget_it() -> None:
    """Uncontended, a held key is a bare table entry (no lock object); a waiter makes one, the holder
    hands the key over on release, and the last one out leaves nothing behind."""
    locks = _KeyLocks()
    held = locks.acquire(["k"])
    assert locks._sync == {("k",): None}
    other = locks.acquire(["j"])  # another key does not wait
    locks.release(other)
    order: list[str] = []

    def waiter() -> None:
        mine = locks.acquire(["k"])
        order.append("waiter")
        locks.release(mine)

    thread = threading.Thread(target=waiter)
    thread.start()
    for _ in range(5000):  # until the waiter is queued (bounded)
        entry = locks._sync[("k",)]
        if entry is not None and entry[1] == 2:
            break
        threading.Event().wait(0.001)
    order.append("holder")
    locks.release(held)
    thread.join(5)
    assert order == ["holder", "waiter"]
    assert locks._sync == {}


def test_plain_decimal_text_passes_through_the_one_number_codecs() -> None:
    """The Lua's '%.17g' text of a timestamp is already a JSON number: stored and loaded unchanged;
    anything else (an exponent, -0, a leading zero, spaces) takes the general path."""
    for text in ("1796025556747.001", "0.10000000000000001", "-12.5", "0", "1000"):
        assert encode("tat", ("string", text)) == text
        assert encode_string("departure", text) == text
        assert decode("tat", text) == ("string", text)
    assert encode("tat", ("string", "1e+20")) == "1e+20"
    assert encode("tat", ("string", "-0")) == "0"
    assert encode("tat", ("string", "1500.50")) == "1500.50"
    assert decode("tat", "1e3") == ("string", "1000")
    assert decode("tat", " 7") == ("string", "7")
    assert decode("tat", "007") == ("string", "7")  # not plain JSON: the general path normalises it
