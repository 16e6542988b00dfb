"""Run the Lua transforms in-process under lupa (Lua 5.1 semantics, as Redis embeds), Redis-faithfully.

The keyspace and ``redis.call`` are Lua: ``lua/runtime/shim.lua`` (its header documents the commands,
the value types, expiry and the CLOCK eviction). This module loads it into a runtime and compiles the
manifest's transforms through its one runner API: :meth:`LuaEngine.runner` (any transform, any
arguments) and :meth:`LuaEngine.bind` (a single-key transform with its parameters fixed: one boundary
crossing per decision). Each compiled transform evaluates its constant part (header and helpers) once
and its code per call, so a decision re-runs no helper definitions and reads no sandbox globals.
:meth:`LuaEngine.step` is the snapshot stores' decision in one crossing (load the keys, run, report
what changed, empty the keyspace); :meth:`LuaEngine.bind_step_raw` is its one-key form with the constant
arguments fixed once, as ``bind`` fixes them.

Thread-safety: lupa serialises calls into one runtime, so each call is atomic by itself (``step``
included); ``LuaEngine.lock`` is for callers that need several calls to form one unit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

try:
    from lupa import luajit21 as _luajit
except ImportError:  # pragma: no cover - wheels without LuaJIT
    _luajit = None
from lupa import lua51 as _lua51

from ._errors import ConfigError, ScriptError, as_script_error
from ._loader import Transform, lua_root
from ._validate import MAX_SAFE_INTEGER, integer

__all__ = [
    "ALLOWED_COMMANDS",
    "PLAIN_ITEMS",
    "RUNTIMES",
    "SHIM_FILE",
    "LuaEngine",
    "shim_source",
    "step_result",
    "unpack_reply",
]

#: The shim, relative to ``lua/``.
SHIM_FILE = "runtime/shim.lua"

#: Lua 5.1-semantics runtimes: LuaJIT 2.1 (default where the lupa wheel ships it; about 3x faster) and
#: PUC Lua 5.1 (the interpreter Redis embeds). The vector suites run on both.
RUNTIMES: dict[str, Any] = {"lua51": _lua51}
if _luajit is not None:
    RUNTIMES["luajit"] = _luajit
DEFAULT_RUNTIME = "luajit" if _luajit is not None else "lua51"

#: The only Redis commands the shim implements; the transforms may use nothing else.
ALLOWED_COMMANDS = frozenset(
    {
        "GET", "SET", "PEXPIRE", "TIME",
        "HGET", "HMGET", "HSET", "HDEL", "HGETALL",
        "ZADD", "ZCARD", "ZCOUNT", "ZRANGE", "ZREMRANGEBYSCORE",
    }
)  # fmt: skip


def _to_py(value: Any) -> Any:
    """Convert a nested reply (a Lua table left by the flat conversion) to Python lists."""
    if type(value).__name__ == "_LuaTable":  # same class name in every lupa runtime module
        return [_to_py(v) for v in value.values()]
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


#: reply items that need no conversion (the common case: numbers and text)
PLAIN_ITEMS = _PLAIN = frozenset({int, float, str})


def unpack_reply(out: Any, start: int = 0) -> list[Any]:
    """A runner's flat result (from ``out[start]`` on) as a Redis-style reply list (an empty array comes
    back as a bare True when it is the whole result). ``out[start]`` is the shim's ``is_array``: True for
    an array of numbers and strings only (taken as is), ``'nested'`` for any other array, False for a
    scalar."""
    if out is True:
        return []
    is_array = out[start]
    if is_array is True:
        return list(out[start + 1 :])
    items = out[start + 1 :] if is_array else out[start + 1 : start + 2]
    if _PLAIN.issuperset(map(type, items)):
        return list(items)
    return [_to_py(v) for v in items]


def step_result(
    out: Any, write: bool
) -> tuple[list[Any], tuple[str, Any, int | None] | Literal[True] | None]:
    """A one-key step's flat result (:meth:`LuaEngine.bind_step_raw`) as ``(reply, outcome)``: the
    outcome ``True`` when the key is as installed (or without ``write``), ``None`` when it is gone, else
    its new ``(kind, value, deadline)`` as :meth:`LuaEngine.dump` gives them."""
    if not write:
        return unpack_reply(out), True
    kind = out[0]
    if kind is True:
        return unpack_reply(out, 3), True
    if kind is False:
        return unpack_reply(out, 3), None
    if kind == "string":
        return unpack_reply(out, 3), (kind, out[1], out[2])
    return unpack_reply(out, 3), _layout(kind, out[1], out[2])


def shim_source() -> str:
    """The text of ``lua/runtime/shim.lua`` (the keyspace and ``redis.call`` under lupa)."""
    return (lua_root() / SHIM_FILE).read_text(encoding="utf-8")


def _split(t: Transform) -> tuple[str, str]:
    """(constant prologue, per-call body) of a transform's expanded source, at ``t.body_line``."""
    lines = t.source.splitlines(keepends=True)
    return "".join(lines[: t.body_line - 1]), "".join(lines[t.body_line - 1 :])


class LuaEngine:
    """One Lua runtime holding a Redis-like keyspace (the shim) and every compiled transform.

    ``runner(name)`` returns a callable ``(clock_ms, *keys, *args) -> tuple`` whose first element says
    whether the reply was an array (``True``) and whose rest are the reply items. ``clock_ms`` is the
    keyspace clock used for TTLs and the shim's ``TIME``; the transform's own ``now_ms`` ARGV is separate.
    ``bind(name, params)`` is the hot path: see its docstring.
    """

    def __init__(
        self, transforms: Sequence[Transform], *, max_keys: int = 1_000_000, runtime: str | None = None
    ) -> None:
        max_keys = integer("max_keys", max_keys, 1, MAX_SAFE_INTEGER)
        runtime = runtime or DEFAULT_RUNTIME
        if runtime not in RUNTIMES:
            raise ConfigError(f"runtime must be one of {', '.join(sorted(RUNTIMES))}, got {runtime!r}")
        self.max_keys = max_keys
        self.runtime = runtime
        self._mod = RUNTIMES[runtime]
        self.lock = threading.Lock()
        self._rt = self._mod.LuaRuntime(
            register_eval=False, register_builtins=False, unpack_returned_tuples=True, encoding="utf-8"
        )
        self._api = self._rt.execute(shim_source(), max_keys)
        self._runners: dict[str, Callable[..., tuple[Any, ...]]] = {}
        self._raw: dict[str, Any] = {}  # the compiled Lua runners themselves (for step)
        self._step = self._api.step
        self._transforms: dict[str, Transform] = {}
        self.lua_error: type[Exception] = self._mod.LuaError
        for t in transforms:
            self._transforms[t.name] = t

    @property
    def lua_runtime(self) -> Any:
        """The lupa ``LuaRuntime`` holding the shim, for tests and profiling tools: code run there is
        outside the transforms' sandbox and may change the keyspace."""
        return self._rt

    def add(self, t: Transform) -> None:
        """Compile one transform into a fixed-arity runner now (``runner`` compiles on first use)."""
        self._transforms[t.name] = t
        self._compile(t)

    def _compile(self, t: Transform) -> Callable[..., tuple[Any, ...]]:
        prologue, body = _split(t)
        result = self._api.compile(prologue, body, t.name, len(t.keys), len(t.argv))
        if isinstance(result, tuple):
            raise ScriptError(t.name, t.sha, f"does not compile: {result[1]}")
        self._raw[t.name] = result
        run = self._runners[t.name] = self._wrap(t.name, t.sha, result, self._mod.LuaError)
        return run

    @staticmethod
    def _wrap(name: str, sha: str, fn: Any, lua_error: type[Exception]) -> Callable[..., tuple[Any, ...]]:

        def run(*args: Any) -> tuple[Any, ...]:
            try:
                return fn(*args)  # type: ignore[no-any-return]
            except lua_error as exc:
                raise ScriptError(name, sha, str(exc)) from None

        run.__name__ = f"run_{name}"
        return run

    def transform(self, name: str) -> Transform:
        """The manifest entry of a compiled transform (:class:`ScriptError` when unknown)."""
        try:
            return self._transforms[name]
        except KeyError:
            raise ScriptError(name, "", f"unknown transform {name!r}") from None

    def bind(
        self, name: str, params: Sequence[Any], *, wall: bool = False, guarded: bool = True
    ) -> tuple[Any, bool]:
        """A private copy of single-key transform ``name`` (ARGV ``[now_ms, *params, <last>]``) with
        ``params`` fixed: ``(run, walled)``. ``run`` is a Lua function ``(clock_ms, key, now_ms, last) ->
        reply items`` (as many as the manifest's reply names, converted by Redis' rules; ``now_ms`` -1
        means ``clock_ms``) that raises :class:`ScriptError` itself. When ``params`` fixes fewer ARGV
        (the per-policy constants first, several per-request values last), ``run`` takes them all:
        ``(clock_ms, key, now_ms, *tail)`` (always guarded). With ``wall=True`` and a runtime
        that can read the wall clock (LuaJIT's FFI), ``walled`` is True and ``run`` is ``(key, now_ms,
        last)``, reading the clock in Lua: one Python call per decision, nothing around it. With
        ``guarded=False`` a script fault (a Lua error, not an error reply) leaves ``run`` as the runtime's
        own exception, which :func:`~throttlekit._errors.as_script_error` converts: no ``pcall`` in the
        call, so LuaJIT traces the whole decision."""
        t = self.transform(name)
        tail = len(t.argv) - 1 - len(params)
        if len(t.keys) != 1 or tail < 1:
            raise ScriptError(
                name,
                t.sha,
                f"bind needs a single-key transform with ARGV [now_ms, *params, *per-call]; "
                f"{name} has keys {list(t.keys)} and argv {list(t.argv)}, got {len(params)} params",
            )
        sha = t.sha

        def fail(message: str) -> None:
            raise ScriptError(name, sha, message)

        prologue, body = _split(t)
        result = self._api.bind(prologue, body, t.name, len(t.reply), fail, wall, guarded, tail, *params)
        if result[0] is None:
            raise ScriptError(t.name, t.sha, f"does not compile: {result[1]}")
        return result[0], bool(result[1])

    def runner(self, name: str) -> Callable[..., tuple[Any, ...]]:
        """The runner of a transform, raising :class:`ScriptError` on a script error. One call is
        atomic; hold ``lock`` only to make several calls one unit (the snapshot stores use :meth:`step`
        instead: one call). Transforms compile
        on first use: a store serving one policy pays for the transforms it runs, not all of them."""
        run = self._runners.get(name)
        if run is None:
            run = self._compile(self.transform(name))
        return run

    def call(self, name: str, clock_ms: int, keys: Sequence[str], args: Sequence[Any]) -> list[Any]:
        """Run a transform once and return its reply as a list (Redis conversion applied)."""
        return unpack_reply(self.runner(name)(clock_ms, *keys, *args))

    def step(
        self,
        name: str,
        clock_ms: int,
        keys: Sequence[str],
        states: Sequence[tuple[str, Any, int | None] | None],
        args: Sequence[Any],
        write: bool,
    ) -> tuple[list[Any], list[tuple[str, Any, int | None] | Literal[True] | None]]:
        """One snapshot decision in one call into Lua: install ``states`` (per key ``(kind, value,
        deadline)`` as :meth:`load` takes them, or None: absent) into the keyspace, which must be empty,
        run transform ``name`` on ``keys`` and ``args`` (ARGV, ``now_ms`` first), and empty the keyspace
        again, on every exit (a script error too). Returns the reply (as :meth:`call`) and, with
        ``write``, per key: ``True`` when it is as installed (nothing to write), ``None`` when it is
        gone, else its new ``(kind, value, deadline)`` as :meth:`dump` gives them (``[]`` without
        ``write``). Atomic by itself: lupa serialises calls into one runtime, so no lock is taken."""
        fn = self._raw.get(name)
        if fn is None:
            self.runner(name)
            fn = self._raw[name]
        try:
            flat: list[Any] = []
            for key, st in zip(keys, states):
                if st is None:
                    flat += (key, False, None, None)
                else:
                    kind, value, deadline = st
                    value = value if kind == "string" else self.table(kind, value)
                    flat += (key, kind, value, deadline)
            out = self._step(fn, clock_ms, write, len(keys), *flat, *args)
        except self.lua_error as exc:
            raise as_script_error(name, self._transforms[name].sha, exc) from None
        if not write:
            return unpack_reply(out), []
        n = 3 * len(keys)
        after: list[tuple[str, Any, int | None] | Literal[True] | None] = []
        for i in range(0, n, 3):
            kind = out[i]
            if kind is True:
                after.append(True)
            elif kind is False:
                after.append(None)
            else:
                after.append(_layout(kind, out[i + 1], out[i + 2]))
        return unpack_reply(out, n), after

    def bind_step_raw(self, name: str, params: Sequence[Any], ntail: int) -> Any:
        """The shim's ``bind_step`` for single-key transform ``name`` with ARGV ``[now_ms, *params,
        *tail]``: a Lua function ``(clock_ms, write, key, kind, value, deadline, now_ms, *tail)`` (``kind``
        False: the key is absent; ``value`` a string, or :meth:`table` of a hash or zset;
        ``now_ms`` resolved) whose flat result :func:`step_result` reads. One call into Lua, atomic by
        itself: the keyspace must be empty and is empty again on every exit; the constants cross into
        Lua once, here. A script fault raises :attr:`lua_error` (see :func:`as_script_error`)."""
        t = self.transform(name)
        if len(t.keys) != 1 or ntail < 0:
            raise ScriptError(name, t.sha, f"bind_step needs a single-key transform; {name} has keys "
                                           f"{list(t.keys)} and argv {list(t.argv)}, got {len(params)} params")  # fmt: skip
        prologue, body = _split(t)
        result = self._api.bind_step(prologue, body, t.name, ntail, *params)
        if isinstance(result, tuple):
            raise ScriptError(name, t.sha, f"does not compile: {result[1]}")
        return result

    def key_count(self) -> int:
        """Keys currently held (expired ones not yet swept included)."""
        with self.lock:
            return int(self._api.count())

    def stats(self) -> dict[str, int]:
        """``keys`` held, ``max_keys``, ``evictions`` (live keys evicted at the bound), ``expired``
        (keys dropped because their TTL passed), counted since the engine was created, and
        ``lua_bytes`` (the runtime's heap now, garbage not yet collected included)."""
        with self.lock:
            keys, evicted, expired, kb = self._api.stats()
        return {
            "keys": int(keys),
            "max_keys": self.max_keys,
            "evictions": int(evicted),
            "expired": int(expired),
            "lua_bytes": int(kb * 1024),
        }

    def collect(self) -> int:
        """Run a full Lua garbage collection; returns the heap size in bytes after it."""
        with self.lock:
            return int(self._api.collect() * 1024)

    def sweep(self, clock_ms: int) -> int:
        """Drop every expired key now; returns the live key count."""
        with self.lock:
            return int(self._api.sweep(clock_ms))

    def flush(self) -> None:
        """Delete every key (the counters are kept)."""
        with self.lock:
            self._api.flush()

    def delete(self, clock_ms: int, key: str) -> int:
        """DEL one key; 1 if it existed."""
        with self.lock:
            return int(self._api["del"](clock_ms, key))

    def load(self, clock_ms: int, key: str, kind: str, value: Any, deadline: int | None) -> None:
        """Install one key: ``kind`` "string" (value str), "hash" (dict str->str) or "zset"
        (list of (member, score)); ``deadline`` is the absolute expiry in ms (None = persistent; one
        already past installs nothing). For tests and tools (the snapshot stores use :meth:`step`)."""
        if kind != "string":
            value = self.table(kind, value)
        with self.lock:
            self._api.load(clock_ms, key, kind, value, deadline)

    def table(self, kind: str, value: Any) -> Any:
        """A hash (dict field -> text) or zset (pairs (member, score)) value as the Lua table
        ``load`` takes (any other kind passes through: the shim names it in its error)."""
        if kind == "hash":
            return self._rt.table_from(dict(value))
        if kind == "zset":
            return self._rt.table_from([self._rt.table_from([m, float(sc)]) for m, sc in value])
        return value

    def dump(self, clock_ms: int, key: str) -> tuple[str, Any, int | None] | None:
        """(kind, value, deadline_ms) of a live key, for tests and debugging; None when absent."""
        with self.lock:
            res = self._api.dump(clock_ms, key)
        if res is None:
            return None
        return _layout(*res)


def _layout(kind: Any, value: Any, deadline: Any) -> tuple[str, Any, int | None]:
    """(kind, value, deadline) as the shim's dump gives them, in Python: a hash as a dict, a zset as a
    list of (member, score) in ascending order (deadline None: persistent)."""
    if kind == "string":
        return kind, value, deadline
    if kind == "hash":
        value = dict(value.items())
    elif kind == "zset":
        value = [(m, s) for m, s in (tuple(p.values()) for p in value.values())]
    return str(kind), value, deadline
