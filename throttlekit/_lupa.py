"""Run the Lua transforms in-process under lupa (Lua 5.1, as Redis embeds), Redis-faithfully.

The keyspace lives in Lua tables, so a decision crosses the Python/Lua boundary once. ``redis.call``
is a shim that implements only the commands the transforms use (``ALLOWED_COMMANDS``; a test scans
``lua/`` for anything else), with Redis' reply conventions: a missing bulk is ``false``, integer replies
are numbers, hash and sorted-set replies are flat arrays of strings. TTLs are measured on the
executor's clock; a key is expired once the clock is past its deadline, as in Redis. Script replies are
converted as Redis converts them (numbers truncated toward zero, ``true`` to 1, a table to an array cut
at the first nil, ``{err=...}`` to an error).

The key table is bounded: at ``max_keys`` a new key first reclaims expired keys (a full sweep at most
once per ``max_keys // 8`` insertions, so a flood costs O(1) amortised), then evicts the oldest key by
creation order. Expired keys are also swept every time as many keys were created as are live.

Thread-safety: lupa serialises calls into one runtime, so each transform call is atomic by itself;
``LuaEngine.lock`` is for callers that need several calls to form one unit (load, run, dump).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

try:
    from lupa import luajit21 as _luajit
except ImportError:  # pragma: no cover - wheels without LuaJIT
    _luajit = None
from lupa import lua51 as _lua51

from ._errors import ConfigError, ScriptError
from ._loader import Transform
from ._validate import MAX_SAFE_INTEGER, integer

__all__ = ["ALLOWED_COMMANDS", "RUNTIMES", "LuaEngine", "unpack_reply"]

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
        "ZADD", "ZCARD", "ZRANGE", "ZREMRANGEBYSCORE",
    }
)  # fmt: skip

_PRELUDE = r"""
local MAX_KEYS = ...
local type, tonumber, tostring, select, error, pairs = type, tonumber, tostring, select, error, pairs
local floor, ceil, fmt, upper = math.floor, math.ceil, string.format, string.upper
local tinsert, tremove, tsort = table.insert, table.remove, table.sort

local data, kinds, expires, born = {}, {}, {}, {}
local qkeys, qborn, qhead, qtail = {}, {}, 1, 0
local nkeys, seq, since_sweep, since_full_sweep = 0, 0, 0, 0
local S = {now = 0}  -- the keyspace clock (ms), set by every runner call

local function err(msg) error(msg, 0) end

local function drop(k)
  if data[k] ~= nil then
    data[k], kinds[k], expires[k], born[k] = nil, nil, nil, nil
    nkeys = nkeys - 1
  end
end

local function sweep()
  for k, e in pairs(expires) do
    if e < S.now then drop(k) end
  end
  since_sweep, since_full_sweep = 0, 0
end

local function compact_queue()
  local nk, nb, j = {}, {}, 0
  for i = qhead, qtail do
    local k = qkeys[i]
    if k ~= nil and born[k] == qborn[i] then j = j + 1; nk[j] = k; nb[j] = qborn[i] end
  end
  qkeys, qborn, qhead, qtail = nk, nb, 1, j
end

local function evict_oldest()
  while qhead <= qtail do
    local k, b = qkeys[qhead], qborn[qhead]
    qkeys[qhead], qborn[qhead] = nil, nil
    qhead = qhead + 1
    if k ~= nil and born[k] == b then drop(k); return end
  end
end

-- live value of k, or nil (lazy expiry: a key lives while NOW <= its deadline)
local function live(k)
  local v = data[k]
  if v == nil then return nil end
  local e = expires[k]
  if e ~= nil and e < S.now then drop(k); return nil end
  return v
end

local function create(k, v, kind)
  if nkeys >= MAX_KEYS then
    if since_full_sweep >= floor(MAX_KEYS / 8) then sweep() end
    if nkeys >= MAX_KEYS then evict_oldest() end
  end
  seq = seq + 1
  data[k], kinds[k], born[k] = v, kind, seq
  nkeys = nkeys + 1
  qtail = qtail + 1
  qkeys[qtail], qborn[qtail] = k, seq
  since_sweep, since_full_sweep = since_sweep + 1, since_full_sweep + 1
  if since_sweep >= nkeys and since_sweep >= 64 then sweep() end
  if qtail - qhead > 2 * nkeys + 1024 then compact_queue() end
end

local function str(v)
  local t = type(v)
  if t == 'string' then return v end
  if t == 'number' then return fmt('%.17g', v) end
  err('ERR Lua redis lib command arguments must be strings or integers')
end

local function num(v, what)
  local n = tonumber(v)
  if n == nil then err('ERR ' .. what .. ' is not an integer or out of range') end
  return n
end

local function typed(k, kind)
  local v = live(k)
  if v ~= nil and kinds[k] ~= kind then
    err('WRONGTYPE Operation against a key holding the wrong kind of value')
  end
  return v
end

local function zscore_value(s)
  if s == '-inf' then return -math.huge, false end
  if s == '+inf' or s == 'inf' then return math.huge, false end
  s = str(s)
  if string.sub(s, 1, 1) == '(' then return num(string.sub(s, 2), 'min or max'), true end
  return num(s, 'min or max'), false
end

local C = {}
local OK = {ok = 'OK'}
C.GET = function(k)
  local v = typed(k, 'string')
  if v == nil then return false end
  return v
end
C.SET = function(k, v, opt, px, ...)
  if select('#', ...) > 0 then err('ERR syntax error') end
  if type(v) ~= 'string' then v = str(v) end
  local deadline = nil
  if opt ~= nil then
    if opt ~= 'PX' and opt ~= 'px' and upper(str(opt)) ~= 'PX' then err('ERR syntax error') end
    local ms = px
    if type(ms) ~= 'number' then ms = num(px, 'value') end
    if ms ~= floor(ms) then err('ERR value is not an integer or out of range') end
    if ms <= 0 then err("ERR invalid expire time in 'set' command") end
    deadline = S.now + ms
  end
  if live(k) == nil then create(k, v, 'string') else data[k], kinds[k] = v, 'string' end
  expires[k] = deadline
  return OK
end
local function del_keys(...)
  local n = 0
  for i = 1, select('#', ...) do
    local k = select(i, ...)
    if live(k) ~= nil then drop(k); n = n + 1 end
  end
  return n
end
C.PEXPIRE = function(k, ms)
  ms = num(ms, 'value')
  if ms ~= floor(ms) then err('ERR value is not an integer or out of range') end
  if live(k) == nil then return 0 end
  if ms <= 0 then drop(k) else expires[k] = S.now + ms end
  return 1
end
C.TIME = function()
  local now = S.now
  local s = floor(now / 1000)
  return {tostring(s), tostring(floor((now - s * 1000) * 1000))}
end
C.HGET = function(k, f)
  local h = typed(k, 'hash')
  if h == nil then return false end
  local v = h[str(f)]
  if v == nil then return false end
  return v
end
C.HMGET = function(k, ...)
  local h = typed(k, 'hash')
  local out = {}
  for i = 1, select('#', ...) do
    local v = nil
    if h ~= nil then v = h[str((select(i, ...)))] end
    if v == nil then out[i] = false else out[i] = v end
  end
  return out
end
C.HSET = function(k, ...)
  local n = select('#', ...)
  if n == 0 or n % 2 ~= 0 then err("ERR wrong number of arguments for 'hset' command") end
  local h = typed(k, 'hash')
  if h == nil then h = {}; create(k, h, 'hash') end
  local added = 0
  for i = 1, n, 2 do
    local f, v = str((select(i, ...))), str((select(i + 1, ...)))
    if h[f] == nil then added = added + 1 end
    h[f] = v
  end
  return added
end
C.HDEL = function(k, ...)
  local h = typed(k, 'hash')
  if h == nil then return 0 end
  local n = 0
  for i = 1, select('#', ...) do
    local f = str((select(i, ...)))
    if h[f] ~= nil then h[f] = nil; n = n + 1 end
  end
  if next(h) == nil then drop(k) end
  return n
end
C.HGETALL = function(k)
  local h = typed(k, 'hash')
  local out, i = {}, 0
  if h == nil then return out end
  for f, v in pairs(h) do out[i + 1] = f; out[i + 2] = v; i = i + 2 end
  return out
end
-- sorted set: {members = {member -> score}, order = array of members sorted by (score, member)}
local function zless(z, a, b)
  local sa, sb = z.members[a], z.members[b]
  if sa ~= sb then return sa < sb end
  return a < b
end
C.ZADD = function(k, ...)
  local n = select('#', ...)
  if n == 0 or n % 2 ~= 0 then err('ERR syntax error') end
  local z = typed(k, 'zset')
  if z == nil then z = {members = {}, order = {}}; create(k, z, 'zset') end
  local added = 0
  for i = 1, n, 2 do
    local score, m = num((select(i, ...)), 'value'), str((select(i + 1, ...)))
    if score ~= score then err('ERR value is not a valid float') end
    if z.members[m] == nil then
      added = added + 1
    else
      for j = 1, #z.order do if z.order[j] == m then tremove(z.order, j); break end end
    end
    z.members[m] = score
    local lo, hi = 1, #z.order
    while lo <= hi do
      local mid = floor((lo + hi) / 2)
      if zless(z, z.order[mid], m) then lo = mid + 1 else hi = mid - 1 end
    end
    tinsert(z.order, lo, m)
  end
  return added
end
C.ZCARD = function(k)
  local z = typed(k, 'zset')
  if z == nil then return 0 end
  return #z.order
end
C.ZRANGE = function(k, start, stop, opt, ...)
  if select('#', ...) > 0 then err('ERR syntax error') end
  local withscores = false
  if opt ~= nil then
    if upper(str(opt)) ~= 'WITHSCORES' then err('ERR syntax error') end
    withscores = true
  end
  start, stop = num(start, 'value'), num(stop, 'value')
  local z = typed(k, 'zset')
  local out = {}
  if z == nil then return out end
  local len = #z.order
  if start < 0 then start = len + start end
  if stop < 0 then stop = len + stop end
  if start < 0 then start = 0 end
  if stop >= len then stop = len - 1 end
  local j = 0
  for i = start + 1, stop + 1 do
    local m = z.order[i]
    j = j + 1; out[j] = m
    if withscores then j = j + 1; out[j] = fmt('%.17g', z.members[m]) end
  end
  return out
end
C.ZREMRANGEBYSCORE = function(k, min, max)
  local lo, lox = zscore_value(min)
  local hi, hix = zscore_value(max)
  local z = typed(k, 'zset')
  if z == nil then return 0 end
  local keep, removed = {}, 0
  for _, m in ipairs(z.order) do
    local s = z.members[m]
    local above = s > lo or (not lox and s == lo)
    local below = s < hi or (not hix and s == hi)
    if above and below then z.members[m] = nil; removed = removed + 1 else keep[#keep + 1] = m end
  end
  z.order = keep
  if #keep == 0 then drop(k) end
  return removed
end

local function dispatch(cmd, ...)
  local f = C[cmd]
  if f == nil then
    if type(cmd) ~= 'string' then err('ERR Please specify at least one argument for this redis lib call') end
    f = C[upper(cmd)]
    if f == nil then err('ERR unknown command \'' .. cmd .. '\' (not in the throttlekit lupa shim allowlist)') end
  end
  return f(...)
end

-- redis.call raises the command's error (a string, as Redis reports it); redis.pcall returns {err=...}
local redis = {}
redis.call = dispatch
redis.pcall = function(...)
  local ok, res = pcall(dispatch, ...)
  if ok then return res end
  return {err = tostring(res)}
end
redis.error_reply = function(msg) return {err = msg} end
redis.status_reply = function(msg) return {ok = msg} end

-- Redis' Lua -> reply conversion, flattened for the boundary: (true, items...) for an array,
-- (false, scalar) otherwise. Nested arrays stay Lua tables (converted by Python).
local function conv1(v)
  local t = type(v)
  if t == 'number' then
    if v >= 0 then return floor(v) end
    return ceil(v)
  elseif t == 'boolean' then
    if v then return 1 end
    return nil
  elseif t == 'table' then
    if v.err ~= nil then error(v.err, 0) end
    if v.ok ~= nil then return v.ok end
    local out, i = {}, 1
    while v[i] ~= nil do out[i] = conv1(v[i]); if out[i] == nil then break end; i = i + 1 end
    return out
  end
  return v
end

local unpack = unpack
local function convert(r)
  if type(r) == 'table' and r.err == nil and r.ok == nil then
    -- scripts return fresh tables, so converting in place is safe
    local n = 0
    while true do
      local v = r[n + 1]
      if v == nil then break end
      if type(v) == 'number' then
        if v >= 0 then r[n + 1] = floor(v) else r[n + 1] = ceil(v) end
      else
        v = conv1(v)
        if v == nil then break end
        r[n + 1] = v
      end
      n = n + 1
    end
    return true, unpack(r, 1, n)
  end
  return false, conv1(r)
end

local SAFE = {
  math = math, string = string, table = table, tonumber = tonumber, tostring = tostring, type = type,
  pairs = pairs, ipairs = ipairs, next = next, unpack = unpack, select = select, error = error,
  pcall = pcall, assert = assert, redis = redis,
}

local function make_env(KEYS, ARGV)
  local env = {KEYS = KEYS, ARGV = ARGV}
  for k, v in pairs(SAFE) do env[k] = v end
  return setmetatable(env, {
    __index = function(_, k) error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2) end,
    __newindex = function(_, k) error("Script attempted to create global variable '" .. tostring(k) .. "'", 2) end,
  })
end

-- compile(src, name, nkeys, nargs) -> runner(now, key1.., arg1..) with fixed arity
local function compile(src, name, nkeys, nargs)
  local KEYS, ARGV = {}, {}
  local fn, cerr = loadstring(src, '=' .. name)
  if fn == nil then return nil, cerr end
  setfenv(fn, make_env(KEYS, ARGV))
  local params, body = {'t'}, {}
  for i = 1, nkeys do params[#params + 1] = 'k' .. i; body[#body + 1] = 'K[' .. i .. ']=k' .. i end
  for i = 1, nargs do params[#params + 1] = 'a' .. i; body[#body + 1] = 'A[' .. i .. ']=a' .. i end
  local gen = 'local S, convert, fn, K, A = ...\nreturn function(' .. table.concat(params, ',') ..
    ')\nS.now = t\n' .. table.concat(body, '\n') .. '\nreturn convert(fn())\nend'
  local factory = assert(loadstring(gen, '=runner:' .. name))
  return factory(S, convert, fn, KEYS, ARGV)
end

-- compile_bound(src, name, p1..pn): a private copy of a check transform whose ARGV[2..n+1] are fixed to
-- the limiter's strategy parameters; a decision then crosses the boundary as (t, key, now, cost) and comes
-- back as (allowed: boolean, limit, remaining, reset_at, retry_after_ms), converted by Redis' rules.
local function compile_bound(src, name, ...)
  local KEYS, ARGV = {}, {}
  local fn, cerr = loadstring(src, '=' .. name)
  if fn == nil then return nil, cerr end
  setfenv(fn, make_env(KEYS, ARGV))
  local n = select('#', ...)
  for i = 1, n do ARGV[i + 1] = (select(i, ...)) end
  local last = n + 2
  return function(t, k, now, cost)
    S.now = t
    KEYS[1] = k
    ARGV[1] = now
    ARGV[last] = cost
    local _, a, l, rm, rs, ry = convert(fn())
    return a == 1, l, rm, rs, ry
  end
end

local admin = {}
admin.compile = compile
admin.compile_bound = compile_bound
admin.count = function() return nkeys end
admin.sweep = function(t) S.now = t; sweep(); return nkeys end
admin.flush = function()
  data, kinds, expires, born = {}, {}, {}, {}
  qkeys, qborn, qhead, qtail = {}, {}, 1, 0
  nkeys, since_sweep, since_full_sweep = 0, 0, 0
end
admin.dump = function(t, k)
  S.now = t
  local v = live(k)
  if v == nil then return nil end
  local kind = kinds[k]
  if kind == 'string' then return kind, v, expires[k] end
  if kind == 'hash' then
    local out = {}
    for f, x in pairs(v) do out[f] = x end
    return kind, out, expires[k]
  end
  local out = {}
  for i, m in ipairs(v.order) do out[i] = {m, v.members[m]} end
  return kind, out, expires[k]
end
admin.del = function(t, k) S.now = t; return del_keys(k) end
-- load(t, k, kind, value, deadline): install one key (snapshot transport for non-Redis stores)
admin.load = function(t, k, kind, value, deadline)
  S.now = t
  del_keys(k)
  if kind == 'string' then
    create(k, value, 'string')
  elseif kind == 'hash' then
    local h = {}
    for f, v in pairs(value) do h[f] = v end
    create(k, h, 'hash')
  elseif kind == 'zset' then
    local z = {members = {}, order = {}}
    for _, pair in ipairs(value) do z.members[pair[1]] = pair[2] end
    for m, _ in pairs(z.members) do z.order[#z.order + 1] = m end
    tsort(z.order, function(a, b) return zless(z, a, b) end)
    create(k, z, 'zset')
  else
    error('unknown kind ' .. tostring(kind))
  end
  expires[k] = deadline
end
return admin
"""


def _to_py(value: Any) -> Any:
    """Convert a nested reply (a Lua table left by the flat conversion) to Python lists."""
    if type(value).__name__ == "_LuaTable":  # same class name in every lupa runtime module
        return [_to_py(v) for v in value.values()]
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def unpack_reply(out: Any) -> list[Any]:
    """A runner's flat result as a Redis-style reply list (an empty array comes back as a bare True)."""
    if out is True:
        return []
    return [_to_py(v) for v in out[1:]] if out[0] else [_to_py(out[1])]


class LuaEngine:
    """One Lua 5.1 runtime holding a Redis-like keyspace and every compiled transform.

    ``runner(name)`` returns a callable ``(now_ms, *keys, *args) -> tuple`` whose first element says
    whether the reply was an array (``True``) and whose rest are the reply items. ``now_ms`` here is the
    keyspace clock used for TTLs and the shim's ``TIME``; the transform's own ``now_ms`` ARGV is separate.
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
        self._admin = self._rt.execute(_PRELUDE, max_keys)
        self._runners: dict[str, Callable[..., tuple[Any, ...]]] = {}
        self._raw: dict[str, Any] = {}
        self._transforms: dict[str, Transform] = {}
        self.lua_error: type[Exception] = self._mod.LuaError
        self._shas: dict[str, str] = {}
        for t in transforms:
            self.add(t)

    def add(self, t: Transform) -> None:
        """Compile one transform (its expanded source) into a fixed-arity runner."""
        result = self._admin.compile(t.source, t.name, len(t.keys), len(t.argv))
        if isinstance(result, tuple):
            raise ScriptError(t.name, t.sha, f"does not compile: {result[1]}")
        self._raw[t.name] = result
        self._transforms[t.name] = t
        self._runners[t.name] = self._wrap(t.name, t.sha, result, self._mod.LuaError)
        self._shas[t.name] = t.sha

    @staticmethod
    def _wrap(name: str, sha: str, fn: Any, lua_error: type[Exception]) -> Callable[..., tuple[Any, ...]]:

        def run(*args: Any) -> tuple[Any, ...]:
            try:
                return fn(*args)  # type: ignore[no-any-return]
            except lua_error as exc:
                raise ScriptError(name, sha, str(exc)) from None

        run.__name__ = f"run_{name}"
        return run

    def raw_runner(self, name: str) -> Any:
        """The Lua runner itself (no Python wrapper): it raises ``self.lua_error`` on a script error.
        One call is atomic on its own (lupa serialises calls into a runtime); hot paths use this."""
        try:
            return self._raw[name]
        except KeyError:
            raise ScriptError(name, "", f"unknown transform {name!r}") from None

    def bound_runner(self, name: str, params: Sequence[Any]) -> Any:
        """``raw_runner(name)`` of a decision transform with the ARGV between ``now_ms`` and the last
        argument fixed to ``params``: ``(clock_ms, key, now_ms, cost) -> (allowed: bool, limit, remaining,
        reset_at, retry_after_ms)``. For check transforms (ARGV ``[now_ms, *params, cost]``, 5-field reply)."""
        t = self._transforms.get(name)
        if t is None:
            raise ScriptError(name, "", f"unknown transform {name!r}")
        result = self._admin.compile_bound(t.source, t.name, *params)
        if isinstance(result, tuple):
            raise ScriptError(t.name, t.sha, f"does not compile: {result[1]}")
        return result

    def runner(self, name: str) -> Callable[..., tuple[Any, ...]]:
        """The runner of a transform, raising :class:`ScriptError` on a script error. One call is
        atomic; hold ``lock`` only to make several calls one unit (load, run, dump)."""
        try:
            return self._runners[name]
        except KeyError:
            raise ScriptError(name, "", f"unknown transform {name!r}") from None

    def call(self, name: str, clock_ms: int, keys: Sequence[str], args: Sequence[Any]) -> list[Any]:
        """Run a transform once and return its reply as a list (Redis conversion applied)."""
        return unpack_reply(self.runner(name)(clock_ms, *keys, *args))

    def key_count(self) -> int:
        """Keys currently held (expired ones not yet swept included)."""
        with self.lock:
            return int(self._admin.count())

    def sweep(self, clock_ms: int) -> int:
        """Drop every expired key now; returns the live key count."""
        with self.lock:
            return int(self._admin.sweep(clock_ms))

    def flush(self) -> None:
        """Delete every key."""
        with self.lock:
            self._admin.flush()

    def delete(self, clock_ms: int, key: str) -> int:
        """DEL one key; 1 if it existed."""
        with self.lock:
            return int(self._admin["del"](clock_ms, key))

    def load(self, clock_ms: int, key: str, kind: str, value: Any, deadline: int | None) -> None:
        """Install one key: ``kind`` "string" (value str), "hash" (dict str->str) or "zset"
        (list of (member, score)); ``deadline`` is the absolute expiry in ms (None = persistent).
        The transport half of the snapshot stores (Postgres, DynamoDB): load, run, dump."""
        if kind == "hash":
            value = self._rt.table_from(dict(value))
        elif kind == "zset":
            value = self._rt.table_from([self._rt.table_from([m, float(sc)]) for m, sc in value])
        with self.lock:
            self._admin.load(clock_ms, key, kind, value, deadline)

    def dump(self, clock_ms: int, key: str) -> tuple[str, Any, int | None] | None:
        """(kind, value, deadline_ms) of a live key, for tests and debugging; None when absent."""
        with self.lock:
            res = self._admin.dump(clock_ms, key)
        if res is None:
            return None
        kind, value, deadline = res
        if kind == "hash":
            value = dict(value.items())
        elif kind == "zset":
            value = [(m, s) for m, s in (tuple(p.values()) for p in value.values())]
        return str(kind), value, deadline
