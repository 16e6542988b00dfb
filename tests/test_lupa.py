"""The lupa executor behaves like Redis for what the transforms use, and nothing more."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import throttlekit as tk
from throttlekit import _errors as tk_errors
from throttlekit._errors import ConfigError, ScriptError
from throttlekit._loader import Transform, load_manifest, lua_root
from throttlekit._lupa import ALLOWED_COMMANDS, RUNTIMES, LuaEngine

RUNTIME_IDS = sorted(RUNTIMES)


def script(source: str, nkeys: int = 1, nargs: int = 1, name: str = "t") -> Transform:
    return Transform(
        name, f"{name}.lua", ("k",) * nkeys, ("now_ms",) * nargs, (), False, 1, "tat", source, "0" * 40, ()
    )


def engine(runtime: str, *sources: str, max_keys: int = 1000) -> LuaEngine:
    return LuaEngine(
        [script(s, name=f"s{i}") for i, s in enumerate(sources)], max_keys=max_keys, runtime=runtime
    )


@pytest.fixture(params=RUNTIME_IDS)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_scripts_use_only_the_allowlisted_commands() -> None:
    used: set[str] = set()
    scripts = [*Path(lua_root()).glob("transforms/*.lua"), *Path(lua_root()).glob("lib/*.lua")]
    for path in scripts:
        text = path.read_text()
        # every redis.* use is call/pcall with a literal command name
        for m in re.finditer(r"redis\.(\w+)", text):
            assert m.group(1) in ("call", "pcall"), f"{path.name}: redis.{m.group(1)}"
        calls = re.findall(r"(?:redis\.p?call|rcall)\(\s*'([A-Za-z]+)'", text)
        bare = re.findall(r"(?:redis\.p?call|rcall)\(\s*[^'\s]", text)
        assert not bare, f"{path.name}: command names must be string literals"
        used.update(c.upper() for c in calls)
    assert used, "no commands found: the scan is broken"
    # the shim implements exactly what the scripts use: nothing missing, nothing extra
    assert used == ALLOWED_COMMANDS, (sorted(used - ALLOWED_COMMANDS), sorted(ALLOWED_COMMANDS - used))


def test_the_shim_dispatches_exactly_the_allowlist() -> None:
    from throttlekit._lupa import shim_source

    implemented = set(re.findall(r"^C\.([A-Z]+) = function", shim_source(), re.M))
    assert implemented == ALLOWED_COMMANDS


def test_every_transform_compiles_on_every_runtime(runtime: str) -> None:
    e = LuaEngine(list(load_manifest().values()), runtime=runtime)
    for name in load_manifest():
        assert callable(e.runner(name))


def test_reply_conversion_follows_redis(runtime: str) -> None:
    e = engine(
        runtime,
        "return {1.9, -1.9, 'x', true, 2}",
        "return {1, false, 3}",
        "return 7.5",
        "return {1, {2.5, 'y'}}",
        "return redis.status_reply('PONG')",
    )
    assert e.call("s0", 0, ["k"], [0]) == [1, -1, "x", 1, 2]
    assert e.call("s1", 0, ["k"], [0]) == [1]  # cut at the first nil (false)
    assert e.call("s2", 0, ["k"], [0]) == [7]
    assert e.call("s3", 0, ["k"], [0]) == [1, [2, "y"]]
    assert e.call("s4", 0, ["k"], [0]) == ["PONG"]


def test_a_one_key_step_flags_a_flat_reply_and_converts_a_nested_one(runtime: str) -> None:
    """The shim's is_array is True only for an array of numbers and strings (Python then takes the items
    as they come: the snapshot stores' bound call relies on it); any other array is converted."""
    from throttlekit._lupa import step_result

    e = engine(
        runtime,
        "redis.call('SET', KEYS[1], '5') return {1.9, 'x', 2}",
        "redis.call('SET', KEYS[1], '5') return {1, {2.5, 'y'}, 'z'}",
        "redis.call('SET', KEYS[1], '5') return {}",
    )
    flat = e.bind_step_raw("s0", (), 0)(0, True, "k", False, None, None, 0)
    assert flat[3] is True and step_result(flat, True) == ([1, "x", 2], ("string", "5", None))
    nested = e.bind_step_raw("s1", (), 0)(0, True, "k", False, None, None, 0)
    assert nested[3] is not True and step_result(nested, True) == ([1, [2, "y"], "z"], ("string", "5", None))
    empty = e.bind_step_raw("s2", (), 0)(0, True, "k", False, None, None, 0)
    assert empty[3] is True and step_result(empty, True) == ([], ("string", "5", None))


def test_error_reply_and_command_errors_raise_script_error(runtime: str) -> None:
    e = engine(
        runtime,
        "return redis.error_reply('boom')",
        "return redis.call('FLUSHALL')",
        "redis.call('SET', KEYS[1], 'x') return redis.call('HGET', KEYS[1], 'f')",
        "local r = redis.pcall('SET', KEYS[1], 'v', 'PX', 0) return r['err']",
    )
    with pytest.raises(ScriptError, match="boom"):
        e.call("s0", 0, ["k"], [0])
    with pytest.raises(ScriptError, match="unknown command 'FLUSHALL'"):
        e.call("s1", 0, ["k"], [0])
    with pytest.raises(ScriptError, match="WRONGTYPE"):
        e.call("s2", 0, ["k"], [0])
    assert e.call("s3", 0, ["j"], [0]) == ["ERR invalid expire time in 'set' command"]


@pytest.mark.parametrize("guarded", [True, False])
def test_a_script_fault_in_a_bound_call_is_a_script_error(runtime: str, guarded: bool) -> None:
    """Guarded, the bound call converts a Lua error itself (pcall); unguarded (the limiter's hot path) it
    leaves as lupa's error and ``as_script_error`` converts it: either way a ScriptError naming the
    transform, carrying the Lua message and no traceback."""
    store = tk.MemoryStore(runtime=runtime, clock=tk.ManualClock(1_000))
    store.engine.load(1_000, "k", "hash", {"f": "1"}, None)  # a hash where gcra keeps a string
    lim = tk.Limiter(tk.Gcra(10, "1s"), store=store)
    with pytest.raises(ScriptError, match="WRONGTYPE") as info:
        lim.check("k")  # the limiter's unguarded path
    assert info.value.transform == "gcra" and "stack traceback" not in str(info.value)
    run = store.bind("gcra", lim.strategy.arguments("gcra"), guarded=guarded)
    if guarded:
        with pytest.raises(ScriptError, match="WRONGTYPE"):
            run("k", 1_000, 1)
    else:
        with pytest.raises(store.engine.lua_error) as raw:
            run("k", 1_000, 1)
        err = tk_errors.as_script_error("gcra", "", raw.value)
        assert isinstance(err, ScriptError) and "stack traceback" not in err.lua_message
        assert err.lua_message.startswith("WRONGTYPE")
    assert lim.check("fresh").allowed  # the store is still usable


def test_globals_cannot_be_created_or_read(runtime: str) -> None:
    e = engine(runtime, "x = 1 return 1", "return undefined_thing", "return os.time()")
    with pytest.raises(ScriptError, match="create global variable 'x'"):
        e.call("s0", 0, ["k"], [0])
    with pytest.raises(ScriptError, match="nonexistent global variable 'undefined_thing'"):
        e.call("s1", 0, ["k"], [0])
    with pytest.raises(ScriptError, match="nonexistent global variable 'os'"):
        e.call("s2", 0, ["k"], [0])


def test_ttl_is_measured_on_the_injected_clock(runtime: str) -> None:
    e = engine(
        runtime,
        "return redis.call('SET', KEYS[1], ARGV[1], 'PX', 100)",
        "return {redis.call('GET', KEYS[1])}",
        "return redis.call('PEXPIRE', KEYS[1], ARGV[1])",
    )
    e.call("s0", 1000, ["k"], ["v"])
    assert e.dump(1050, "k") == ("string", "v", 1100)
    assert e.call("s1", 1100, ["k"], [0]) == ["v"]  # alive until the clock passes the deadline (Redis)
    assert e.call("s1", 1101, ["k"], [0]) == []  # GET -> false cuts the array: the key is gone
    e.call("s0", 2000, ["k"], ["v"])
    assert e.call("s2", 2000, ["k"], [0]) == [1]  # PEXPIRE 0 deletes
    assert e.dump(2000, "k") is None
    assert e.call("s2", 2000, ["missing"], [5]) == [0]


def test_time_answers_from_the_injected_clock(runtime: str) -> None:
    e = engine(runtime, "local t = redis.call('TIME') return {tonumber(t[1]), tonumber(t[2])}")
    assert e.call("s0", 1_700_000_000_123, ["k"], [0]) == [1_700_000_000, 123_000]


def test_server_time_sentinel_reads_the_store_clock() -> None:
    clock = tk.ManualClock(5_000)
    limiter = tk.Limiter(tk.FixedWindow(2, 1000), store=tk.MemoryStore(clock=clock))
    assert limiter.check("a").reset_at == 6_000
    clock.set(6_500)
    assert limiter.check("a").reset_at == 7_000


def test_key_flood_is_bounded_and_evicts_expired_first(runtime: str) -> None:
    e = engine(runtime, "return redis.call('SET', KEYS[1], 'v', 'PX', ARGV[1])", max_keys=64)
    # 8 short-lived keys, then live ones up to the bound
    for i in range(8):
        e.call("s0", 0, [f"short{i}"], [10])
    for i in range(56):
        e.call("s0", 0, [f"live{i}"], [1_000_000])
    assert e.key_count() == 64
    # after the short ones expired, 8 more keys reclaim them instead of evicting live keys
    for i in range(8):
        e.call("s0", 100, [f"new{i}"], [1_000_000])
    assert e.key_count() == 64
    assert all(e.dump(100, f"live{i}") is not None for i in range(56))
    # a flood of live keys evicts the oldest first and never exceeds the bound
    for i in range(1000):
        e.call("s0", 100, [f"flood{i}"], [1_000_000])
    assert e.key_count() == 64
    assert e.dump(100, "live0") is None
    assert e.dump(100, "flood999") is not None


def _gc_pause(e: LuaEngine) -> int:
    """The collector's pause now (``setpause`` answers the previous value; it is put back)."""
    return int(
        e.lua_runtime.execute(
            "local p = collectgarbage('setpause', 200); collectgarbage('setpause', p); return p"
        )
    )


def test_the_collector_pause_follows_the_heap_after_every_cycle(runtime: str) -> None:
    e = engine(runtime, "return redis.call('SET', KEYS[1], ARGV[1])")
    e.lua_runtime.execute("collectgarbage('collect')")
    small_kb = float(e.lua_runtime.eval("collectgarbage('count')"))
    assert small_kb < 1024
    assert _gc_pause(e) == 400  # a small heap: garbage up to 3x its size before a cycle
    # ~40 MB of live tables: the allowance is 20% of the heap again (the large-keyspace setting)
    e.lua_runtime.execute(
        "tk_test_ballast = {{}, {}} for i = 1, 600000 do local t = tk_test_ballast[i % 20 == 0 and 1 or 2]; "
        "t[#t + 1] = {i} end"
    )
    e.lua_runtime.execute("collectgarbage('collect')")
    assert float(e.lua_runtime.eval("collectgarbage('count')")) > 20_000
    assert _gc_pause(e) == 120
    # a heap of a few MB: the 1 MB allowance (100 + 100 * 1024 / kb)
    e.lua_runtime.execute("tk_test_ballast[2] = nil collectgarbage('collect')")
    kb = float(e.lua_runtime.eval("collectgarbage('count')"))
    assert 1_500 < kb < 5_000
    assert abs(_gc_pause(e) - (100 + 100 * 1024 / kb)) <= 2
    # the heap shrinks back: so does the pause, to 400 again, and decisions go on meanwhile
    e.lua_runtime.execute("tk_test_ballast = nil collectgarbage('collect')")
    assert _gc_pause(e) == 400
    for i in range(3000):
        e.call("s0", 0, [f"k{i % 10}"], [str(i)])
    assert e.key_count() == 10


@pytest.mark.skipif("luajit" not in RUNTIMES, reason="jit.profile is LuaJIT's")
def test_the_embedded_profile_names_the_lines_that_cost() -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "profile_embedded.py"
    out = subprocess.run(
        [sys.executable, str(script), "--checks", "300000"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "| outside Lua: Python, lupa's crossing" in out
    assert "`return string.format('%.17g', v)`" in out  # the state's text, the largest compiled line
    shares = [int(m) for m in re.findall(r"\| (\d+)% \|", out)]
    assert 95 <= sum(shares) <= 105


def test_max_keys_is_validated() -> None:
    with pytest.raises(ConfigError, match="max_keys is out of range, got 0"):
        tk.MemoryStore(max_keys=0)
    with pytest.raises(ConfigError, match="runtime must be one of"):
        tk.MemoryStore(runtime="lua54")


def test_sorted_set_commands(runtime: str) -> None:
    e = engine(
        runtime,
        "redis.call('ZADD', KEYS[1], 5, 'b', 1, 'a', 5, 'a2') return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')",
        "return {redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]), redis.call('ZCARD', KEYS[1])}",
    )
    assert e.call("s0", 0, ["z"], [0]) == ["a", "1", "a2", "5", "b", "5"]
    assert e.call("s1", 0, ["z"], [1]) == [1, 2]
    assert e.call("s1", 0, ["z"], [5]) == [2, 0]
    assert e.dump(0, "z") is None  # an emptied set is deleted, as in Redis


def test_hash_commands(runtime: str) -> None:
    e = engine(
        runtime,
        "redis.call('HSET', KEYS[1], 'a', 1.5, 'b', 'x') return redis.call('HMGET', KEYS[1], 'a', 'zz', 'b')",
        "return redis.call('HGETALL', KEYS[1])",
    )
    assert e.call("s0", 0, ["h"], [0]) == ["1.5"]  # HMGET's false for 'zz' cuts the reply like Redis
    flat = e.call("s1", 0, ["h"], [0])
    assert dict(zip(flat[::2], flat[1::2])) == {"a": "1.5", "b": "x"}


# -- step: the snapshot stores' load, run, dump and flush in one call ---------------------------------

STEP_SCRIPTS = (
    "redis.call('SET', KEYS[1], ARGV[2]) return {1, 'x'}",  # s0: set a string
    "local v = redis.call('GET', KEYS[1]) if v then redis.call('SET', KEYS[1], v) end return v or 'none'",
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1",  # s2: a new deadline, same value
    "redis.call('HDEL', KEYS[1], 'a', 'b') return 1",  # s3: delete every field: the key is gone
    "redis.call('HSET', KEYS[1], 'a', ARGV[2]) return redis.call('HGET', KEYS[1], 'b')",  # s4
    "redis.call('ZADD', KEYS[1], ARGV[2], 'm1') return redis.call('ZCARD', KEYS[1])",  # s5
    "redis.call('SET', KEYS[1], 'x') return redis.call('HGET', KEYS[1], 'f')",  # s6: WRONGTYPE after a write
    "redis.call('SET', KEYS[1], 'x') return redis.error_reply('denied by the script')",  # s7
    "redis.call('SET', KEYS[1], ARGV[2]) redis.call('SET', KEYS[2], ARGV[2]) return {1}",  # s8: two keys
)


def step_engine(runtime: str) -> LuaEngine:
    ts = [script(s, name=f"s{i}", nargs=2) for i, s in enumerate(STEP_SCRIPTS[:8])]
    ts.append(script(STEP_SCRIPTS[8], nkeys=2, nargs=2, name="s8"))
    return LuaEngine(ts, max_keys=1000, runtime=runtime)


def test_step_reports_each_keys_outcome_and_leaves_the_keyspace_empty(runtime: str) -> None:
    e = step_engine(runtime)
    # absent -> written: the new layout (no deadline); the keyspace is empty again
    assert e.step("s0", 1_000, ["k"], [None], [1_000, "v"], True) == ([1, "x"], [("string", "v", None)])
    assert e.key_count() == 0
    # read and rewritten with the same value (a persistent key): nothing to write
    assert e.step("s1", 1_000, ["k"], [("string", "v", None)], [1_000, 0], True) == (["v"], [True])
    # a plain SET clears a deadline (as in Redis): a change, now persistent
    assert e.step("s1", 1_000, ["k"], [("string", "v", 5_000)], [1_000, 0], True) == (
        ["v"],
        [("string", "v", None)],
    )
    # absent before and after: nothing to write either
    assert e.step("s1", 1_000, ["k"], [None], [1_000, 0], True) == (["none"], [True])
    # same value, new deadline: a change carrying the deadline
    assert e.step("s2", 1_000, ["k"], [("string", "v", 5_000)], [1_000, 250], True) == (
        [1],
        [("string", "v", 1_250)],
    )
    # an already expired record installs nothing: the transform sees the key absent
    assert e.step("s1", 6_000, ["k"], [("string", "v", 5_000)], [6_000, 0], True) == (["none"], [None])
    # a hash emptied by the transform is gone
    assert e.step("s3", 1_000, ["h"], [("hash", {"a": "1", "b": "2"}, None)], [1_000, 0], True) == (
        [1],
        [None],
    )
    # a hash field rewritten with its own value: unchanged; with another value: the whole new hash
    loaded = ("hash", {"a": "1", "b": "2"}, None)
    assert e.step("s4", 1_000, ["h"], [loaded], [1_000, "1"], True) == (["2"], [True])
    assert e.step("s4", 1_000, ["h"], [loaded], [1_000, "9"], True) == (
        ["2"],
        [("hash", {"a": "9", "b": "2"}, None)],
    )
    # a sorted set: the same member and score is unchanged; a new score reports the ascending pairs
    zs = ("zset", [("m0", 5.0), ("m1", 7.0)], 9_000)
    assert e.step("s5", 1_000, ["z"], [zs], [1_000, 7], True) == ([2], [True])
    assert e.step("s5", 1_000, ["z"], [zs], [1_000, 3], True) == (
        [2],
        [("zset", [("m1", 3.0), ("m0", 5.0)], 9_000)],
    )
    # read-only (write=False): the reply alone, nothing reported
    assert e.step("s1", 1_000, ["k"], [("string", "v", None)], [1_000, 0], False) == (["v"], [])
    # several keys: one outcome per key, in order
    assert e.step("s8", 1_000, ["a", "b"], [("string", "w", None), None], [1_000, "w"], True) == (
        [1],
        [True, ("string", "w", None)],
    )
    assert e.key_count() == 0


@pytest.mark.parametrize("keys", [["k"], ["k", "j"]], ids=["one key", "two keys"])
def test_a_transform_error_mid_step_leaves_the_engine_empty(runtime: str, keys: list[str]) -> None:
    """A script fault after a write (WRONGTYPE) and an error reply: a ScriptError naming the transform,
    and the keyspace is empty afterwards, so the next decision never sees the failed one's state."""
    e = step_engine(runtime)
    states = [("hash", {"f": "1"}, None)] + [None] * (len(keys) - 1)
    with pytest.raises(ScriptError, match="WRONGTYPE") as info:
        e.step("s6", 1_000, keys, states, [1_000, 0], True)
    assert info.value.transform == "s6"
    assert e.key_count() == 0
    with pytest.raises(ScriptError, match="denied by the script"):
        e.step("s7", 1_000, keys, [None] * len(keys), [1_000, 0], True)
    assert e.key_count() == 0
    assert e.step("s1", 1_000, ["k"], [None], [1_000, 0], True) == (["none"], [True])  # nothing left over


def test_step_empties_keys_the_transform_did_not_declare(
    runtime: str,
) -> None:
    e = LuaEngine([script("redis.call('SET', 'other', '1') redis.call('SET', KEYS[1], '2') return 1", nargs=1)],
                  runtime=runtime)  # fmt: skip
    assert e.step("t", 1_000, ["k"], [None], [1_000], True) == ([1], [("string", "2", None)])
    assert e.key_count() == 0
