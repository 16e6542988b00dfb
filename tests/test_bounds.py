"""Bounds: the work of one request, integer ranges of every reply, and the memory store's key bound."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import throttlekit as tk
from tests._support.stores import STORES, unique_prefix
from throttlekit._loader import Transform
from throttlekit._lupa import RUNTIMES, LuaEngine
from throttlekit.strategies import MAX_COST

LOG_MAX = tk.SlidingWindowLog.MAX_LIMIT
SAFE = 2**53 - 1


@pytest.fixture(params=sorted(RUNTIMES))
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- 15.7: the work of one request ---------------------------------------------------------------


def test_sliding_log_limit_is_capped_with_field_value_and_max() -> None:
    with pytest.raises(tk.ConfigError) as err:
        tk.SlidingWindowLog(LOG_MAX + 1, "1s")
    assert err.value.field == "limit"
    assert f"got {LOG_MAX + 1}" in str(err.value)
    assert f"<= {LOG_MAX}" in str(err.value)
    assert tk.SlidingWindowLog(LOG_MAX, "1s").limit == LOG_MAX


@pytest.mark.parametrize("store_factory", [STORES["memory-luajit"], STORES["memory-lua51"], STORES["redis"]])
def test_a_cost_above_the_limit_is_denied_without_touching_the_log(store_factory: Any) -> None:
    clock = tk.ManualClock(1_000_000)
    store = store_factory(clock)
    lim = tk.Limiter(tk.SlidingWindowLog(5, 1000), store=store, prefix=unique_prefix(), clock=clock)
    try:
        for dt in (0, 100, 300):  # three entries at 1_000_000, 1_000_100, 1_000_400
            clock.advance(dt)
            assert lim.check("k").allowed
        clock.set(1_001_050)  # the first entry has aged out but is not pruned yet
        raw = _log_scores(store, lim)
        d = lim.check("k", MAX_COST)
        # the decision the vectors define: 2 live entries, retry at the newest's exit, reset at the oldest's
        assert d == tk.Decision(False, 5, 3, 1_001_100, 1_001_400 - 1_001_050)
        assert _log_scores(store, lim) == raw  # nothing pruned, nothing added
        assert lim.check("k", 6) == tk.Decision(False, 5, 3, 1_001_100, 350)
        assert lim.check("k", 3).allowed  # 2 live + 3 = the limit
    finally:
        lim.reset("k")
        store.close()


def _log_scores(store: Any, lim: tk.Limiter) -> list[float]:
    key = lim._kp + "k"
    if isinstance(store, tk.MemoryStore):
        dump = store.dump(key)
        return [] if dump is None else [s for _, s in dump[1]]
    return [s for _, s in store.client.zrange(key, 0, -1, withscores=True)]


def test_one_request_at_the_log_bound_runs_and_keeps_redis_order(runtime: str) -> None:
    """cost = MAX_LIMIT on an empty log, then again once every entry aged out (prune + add)."""
    clock = tk.ManualClock(5_000_000)
    store = tk.MemoryStore(clock=clock, runtime=runtime)
    lim = tk.Limiter(tk.SlidingWindowLog(LOG_MAX, 1000), store=store, clock=clock)
    assert lim.check("k", LOG_MAX) == tk.Decision(True, LOG_MAX, 0, 5_001_000, 0)
    clock.advance(1000)
    assert lim.check("k", LOG_MAX) == tk.Decision(True, LOG_MAX, 0, 5_002_000, 0)
    dump = store.dump("k")
    assert dump is not None
    members = [m for m, _ in dump[1]]
    assert len(members) == LOG_MAX
    assert members == sorted(members)  # one score: Redis orders the members lexicographically
    assert members[0] == "5001000-1" and members[-1] == "5001000-" + max(
        str(i) for i in range(1, LOG_MAX + 1)
    )


class _Zset:
    """Redis' sorted-set semantics for the commands the shim implements, as a reference model."""

    def __init__(self) -> None:
        self.m: dict[str, float] = {}

    def order(self) -> list[tuple[str, float]]:
        return sorted(self.m.items(), key=lambda kv: (kv[1], kv[0]))


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 20), st.integers(0, 30)),
        st.tuples(st.just("rem"), st.integers(-1, 21), st.integers(-1, 21)),
        st.tuples(st.just("range"), st.integers(-5, 5), st.integers(-5, 5)),
        st.tuples(st.just("count"), st.integers(-1, 21), st.integers(-1, 21)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_the_shim_sorted_set_matches_redis_semantics(runtime: str, steps: list[tuple[str, int, int]]) -> None:
    script = Transform(
        "z", "z.lua", ("k",), ("now_ms", "op", "a", "b"), (), False, 1, "log",
        "local op, a, b = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])\n"
        "if op == 'add' then return redis.call('ZADD', KEYS[1], a, 'm' .. b) end\n"
        "if op == 'rem' then return redis.call('ZREMRANGEBYSCORE', KEYS[1], a, '(' .. b) end\n"
        "if op == 'count' then return redis.call('ZCOUNT', KEYS[1], '(' .. a, b) end\n"
        "if op == 'card' then return redis.call('ZCARD', KEYS[1]) end\n"
        "return redis.call('ZRANGE', KEYS[1], a, b, 'WITHSCORES')\n",
        "0" * 40, (),
    )  # fmt: skip
    e = LuaEngine([script], runtime=runtime)
    model = _Zset()
    for op, a, b in steps:
        got = e.call("z", 0, ["k"], [0, op, a, b])
        if op == "add":
            assert got == [0 if f"m{b}" in model.m else 1]
            model.m[f"m{b}"] = a
        elif op == "rem":
            gone = [m for m, s in model.m.items() if a <= s < b]
            for m in gone:
                del model.m[m]
            assert got == [len(gone)]
        elif op == "count":
            assert got == [sum(1 for s in model.m.values() if a < s <= b)]
        else:
            order = model.order()
            n = len(order)
            lo, hi = (a + n if a < 0 else a), (b + n if b < 0 else b)
            lo, hi = max(lo, 0), min(hi, n - 1)
            want = [x for m, s in order[lo : hi + 1] for x in (m, f"{s:.17g}")] if lo <= hi else []
            assert got == want
        assert e.call("z", 0, ["k"], [0, "card", 0, 0]) == [len(model.m)]


# --- 15.9: every field an integer in range ---------------------------------------------------------

_STRATEGIES = {
    "gcra": tk.Gcra(10, "1m"),
    "tokenBucket": tk.TokenBucket(10, 5),
    "fixedWindow": tk.FixedWindow(10, "1m"),
    "slidingWindow": tk.SlidingWindow(10, "1m", buckets=6),
    "slidingWindowLog": tk.SlidingWindowLog(10, "1m"),
    "quota": tk.Quota(10, "calendar-month"),
}
costs = st.one_of(
    st.integers(1, MAX_COST),
    st.floats(min_value=1e-3, max_value=float(MAX_COST), allow_nan=False, allow_infinity=False),
    st.sampled_from([MAX_COST, MAX_COST - 1, 2**52 + 1, 10**15]),
)


def _in_range(*values: Any) -> bool:
    return all(type(v) is int and -SAFE <= v <= SAFE for v in values)


@pytest.mark.parametrize("store_name", ["memory-luajit", "memory-lua51", "redis"])
@pytest.mark.parametrize("kind", sorted(_STRATEGIES))
def test_every_field_is_an_integer_in_range_for_any_cost(store_name: str, kind: str) -> None:
    factory = STORES[store_name].values[0]

    @settings(max_examples=25 if store_name == "redis" else 60, deadline=None)
    @given(st.lists(st.tuples(costs, st.integers(0, 120_000)), min_size=1, max_size=6))
    def run(steps: list[tuple[float, int]]) -> None:
        clock = tk.ManualClock(1_800_000_000_000)
        store = factory(clock)
        lim = tk.Limiter(_STRATEGIES[kind], store=store, prefix=unique_prefix(), clock=clock)
        try:
            for cost, dt in steps:
                clock.advance(dt)
                d = lim.check("k", cost)
                assert _in_range(d.limit, d.remaining, d.reset_at, d.retry_after_ms), (cost, d)
                assert type(d.allowed) is bool
                p = lim.peek("k")
                assert _in_range(p.limit, p.remaining, p.reset_at, p.retry_after_ms), p
                f = lim.forecast("k", cost)
                assert _in_range(f.spendable_now, f.next_replenish_at, f.full_at), (cost, f)
        finally:
            lim.reset("k")
            store.close()

    run()


def test_gcra_max_cost_is_clamped_not_a_float_or_negative() -> None:
    clock = tk.ManualClock(0)
    d = tk.Limiter(tk.Gcra(10, "1m"), store=tk.MemoryStore(clock=clock), clock=clock).check("k", MAX_COST)
    assert d == tk.Decision(False, 10, 10, 0, SAFE)
    assert math.isfinite(d.retry_after_ms) and type(d.retry_after_ms) is int


# --- 15.14: memory store bounds ------------------------------------------------------------------


def test_eviction_spares_keys_in_use_and_is_counted(runtime: str) -> None:
    clock = tk.ManualClock(1_000_000)
    store = tk.MemoryStore(clock=clock, runtime=runtime, max_keys=100)
    lim = tk.Limiter(tk.Gcra(1000, "1h"), store=store, clock=clock)
    hot = [f"hot{i}" for i in range(20)]
    for k in [f"cold{i}" for i in range(80)] + hot:
        lim.check(k)
    stats = store.stats()
    assert {k: stats[k] for k in ("keys", "max_keys", "evictions", "expired")} == {
        "keys": 100,
        "max_keys": 100,
        "evictions": 0,
        "expired": 0,
    }
    assert stats["lua_bytes"] > 0
    for i in range(500):  # a flood of one-off keys while the hot keys keep being used
        for k in hot:
            lim.check(k)
        lim.check(f"flood{i}")
        clock.advance(1)
    stats = store.stats()
    assert stats["keys"] == 100
    assert stats["evictions"] == 500 and store.evictions == 500
    assert all(store.dump(k) is not None for k in hot)  # used keys are never the ones evicted
    assert store.dump("cold0") is None or store.dump("cold79") is None


def test_expired_keys_go_before_any_live_key(runtime: str) -> None:
    clock = tk.ManualClock(1_000_000)
    store = tk.MemoryStore(clock=clock, runtime=runtime, max_keys=64)
    short = tk.Limiter(tk.FixedWindow(5, 100), store=store, prefix="s", clock=clock)
    long = tk.Limiter(tk.FixedWindow(5, "1h"), store=store, prefix="l", clock=clock)
    for i in range(16):
        short.check(f"{i}")
    for i in range(48):
        long.check(f"{i}")
    clock.advance(200)  # the short keys' windows (and TTLs) are over
    for i in range(16):
        long.check(f"new{i}")
    assert store.key_count() == 64
    assert all(store.dump(f"l:{i}") is not None for i in range(48))
    assert store.stats()["evictions"] == 0
    assert store.stats()["expired"] == 16


def test_the_default_bound_is_stated() -> None:
    from throttlekit.stores.memory import DEFAULT_MAX_KEYS

    store = tk.MemoryStore()
    assert store.stats()["max_keys"] == DEFAULT_MAX_KEYS
    readme = (__import__("pathlib").Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"{DEFAULT_MAX_KEYS:,}" in readme
