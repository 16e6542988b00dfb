--[[ shim: the Redis keyspace and redis.call under lupa, so the transforms run in-process unchanged.
Loaded once per Lua runtime by throttlekit/_lupa.py (`...` = max_keys); returns the runner API:
  compile(prologue, body, name, nkeys, nargs)  -> run(clock_ms, key1.., arg1..) -> (is_array, items...)
    (is_array: true, 'nested' or false, see convert)
  bind(prologue, body, name, nreply, fail, wall, guarded, ntail, p1..pn) -> run([clock_ms,] key, now_ms, last..) -> items
  step(run, t, write, nkeys, k1, kind1, value1, deadline1, .., arg1..) -> per key (kind, value, deadline) or a
    flag, then run's (is_array, items...): load, run, dump, flush in one call (the snapshot stores)
  count() / stats() / collect() / sweep(t) / flush() / del(t, k) / dump(t, k) / load(t, k, kind, value, deadline)
`prologue` is a transform's constant part (its header, `local rcall = redis.call` and included helpers),
evaluated once per compile; `body` is the rest, run per call. The text is the loader's expanded source
split at Transform.body_line, so the bytes are the ones Redis runs.

Commands: only those the transforms use (ALLOWED_COMMANDS in _lupa.py; a test compares it with the C
table below), with Redis' replies: a missing bulk is false, integers are numbers, strings stay strings,
hash and sorted-set replies are flat arrays of strings. Values keep Redis' types: a string is a Lua
string, a hash a plain table, a sorted set a table with the ZSET metatable.

Expiry and eviction. meta[k] is the key's deadline in ms on the executor clock (math.huge = none),
negated while the key is "referenced" (used again since it was created or since the eviction hand last
passed it; creating a key does not reference it, so a flood of one-off keys evicts one-off keys first). A key lives while
clock <= deadline (lazy expiry on access, as Redis). At max_keys a new key first reclaims expired keys
(a full sweep when some deadline may have passed, at most once per max_keys/64 insertions: O(1)
amortised, and at most max_keys/64 live keys evicted while expired ones wait), then evicts with the CLOCK
algorithm, an approximate LRU: the hand walks the keyspace, clears the reference mark of used keys and
evicts the first key that is expired or unused since its last pass. Expired keys are also swept
whenever as many keys were created as are live. Deadlines are positive (clocks are epoch ms >= 0).
]]
local MAX_KEYS = ...
-- The collector's pause: a GC cycle starts when the heap reaches pause% of its size after the last one
-- (default 200%). Every decision leaves garbage behind (its reply table, its state's old text), and
-- a cycle marks the whole live heap, so the pause trades memory for time. On a large heap the garbage
-- allowed is 20% of it: at 2x, that garbage, held by the allocator, was ~30% of the RSS per key. On a
-- small one a 20% allowance means a cycle every few hundred decisions (measured: 40-60 ns of a ~1 us
-- embedded check), so the allowance is at least min(3x the heap, GC_ALLOWANCE_KB): at most 1 MB more
-- garbage than the 20% rule holds, on heaps under 5 MB. Re-tuned after every cycle, from the heap's size
-- then, by a finalizer (no cost per decision).
local GC_ALLOWANCE_KB = 1024
local function gc_tune()
  local kb = collectgarbage('count')
  local allowance = kb * 3
  if allowance > GC_ALLOWANCE_KB then allowance = GC_ALLOWANCE_KB end
  if allowance < kb * 0.2 then allowance = kb * 0.2 end
  collectgarbage('setpause', math.floor(100 + 100 * allowance / kb))
end
local function gc_watch() -- a sentinel whose finalizer runs once per cycle and sets the next one up
  local sentinel = newproxy(true)
  getmetatable(sentinel).__gc = function() gc_tune(); gc_watch() end
end
gc_tune()
gc_watch()
local type, tonumber, tostring, select, error, pairs, next = type, tonumber, tostring, select, error, pairs, next
local setmetatable, getmetatable, pcall, loadstring, setfenv = setmetatable, getmetatable, pcall, loadstring, setfenv
local floor, ceil, huge, fmt, upper, sub = math.floor, math.ceil, math.huge, string.format, string.upper, string.sub
local tsort, tconcat, collectgarbage = table.sort, table.concat, collectgarbage
local unpack, ipairs = unpack, ipairs

local data, meta = {}, {}
local nkeys, since_sweep, since_full_sweep, hand = 0, 0, 0, nil
local evicted, expired = 0, 0
local earliest = huge -- no deadline set since the last full sweep is earlier than this
local SWEEP_EVERY = floor(MAX_KEYS / 64)
if SWEEP_EVERY < 1 then SWEEP_EVERY = 1 end
local NOW = 0 -- the executor clock (ms): set by every runner call
local fresh = nil -- the key created by the current call (its later commands in that call do not use it again)

local ZSET = {} -- metatable marking a sorted set

local function err(msg) error(msg, 0) end

local function drop(k)
  data[k], meta[k] = nil, nil
  nkeys = nkeys - 1
end

local function sweep()
  local now, first = NOW, huge
  for k, e in pairs(meta) do
    if e < 0 then e = -e end
    if e < now then drop(k); expired = expired + 1 elseif e < first then first = e end
  end
  since_sweep, earliest = 0, first
end

local function deadline_set(k, d) -- keeps the reference mark
  if meta[k] > 0 then meta[k] = d else meta[k] = -d end
  if d < earliest then earliest = d end
end

local function evict_one()
  local k = hand
  if k ~= nil and meta[k] == nil then k = nil end
  local e
  while true do
    k, e = next(meta, k)
    if k == nil then k, e = next(meta) end
    if k == nil then hand = nil; return end
    if e > 0 or -e < NOW then
      hand = next(meta, k)
      drop(k)
      if e < 0 then e = -e end
      if e < NOW then expired = expired + 1 else evicted = evicted + 1 end
      return
    end
    meta[k] = -e -- second chance: clear the reference mark
  end
end

-- live value of k, or nil; marks k referenced
local function live(k)
  local v = data[k]
  if v == nil then return nil end
  local e = meta[k]
  if e > 0 then
    if e < NOW then drop(k); expired = expired + 1; return nil end
    if k ~= fresh then meta[k] = -e end
  elseif -e < NOW then
    drop(k); expired = expired + 1; return nil
  end
  return v
end

local function create(k, v, deadline)
  if nkeys >= MAX_KEYS then
    if earliest < NOW and since_full_sweep >= SWEEP_EVERY then sweep(); since_full_sweep = 0 end
    while nkeys >= MAX_KEYS do evict_one() end
  end
  data[k], meta[k], fresh = v, deadline, k -- created unreferenced: a key used once goes before one used twice
  if deadline < earliest then earliest = deadline end
  nkeys = nkeys + 1
  since_sweep, since_full_sweep = since_sweep + 1, since_full_sweep + 1
  if since_sweep >= nkeys and since_sweep >= 64 then sweep() end
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

local WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value'

local function kind_of(v)
  if type(v) == 'string' then return 'string' end
  if getmetatable(v) == ZSET then return 'zset' end
  return 'hash'
end

local function get_string(k)
  local v = live(k)
  if v ~= nil and type(v) ~= 'string' then err(WRONGTYPE) end
  return v
end

local function get_hash(k)
  local v = live(k)
  if v ~= nil and (type(v) ~= 'table' or getmetatable(v) ~= nil) then err(WRONGTYPE) end
  return v
end

local function get_zset(k)
  local v = live(k)
  if v ~= nil and getmetatable(v) ~= ZSET then err(WRONGTYPE) end
  return v
end

local function expire_ms(px, what)
  local ms = px
  if type(ms) ~= 'number' then ms = num(px, 'value') end
  if ms ~= floor(ms) then err('ERR value is not an integer or out of range') end
  if ms <= 0 then err("ERR invalid expire time in '" .. what .. "' command") end
  return ms
end

local C = {}
local OK = {ok = 'OK'}

C.GET = function(k)
  local v = get_string(k)
  if v == nil then return false end
  return v
end

C.SET = function(k, v, opt, px, ...)
  if select('#', ...) > 0 then err('ERR syntax error') end
  if type(v) ~= 'string' then v = str(v) end
  local deadline = huge
  if opt ~= nil then
    if opt ~= 'PX' and opt ~= 'px' and upper(str(opt)) ~= 'PX' then err('ERR syntax error') end
    deadline = NOW + expire_ms(px, 'set')
  end
  if live(k) == nil then create(k, v, deadline) else data[k] = v; deadline_set(k, deadline) end
  return OK
end

C.PEXPIRE = function(k, ms)
  ms = num(ms, 'value')
  if ms ~= floor(ms) then err('ERR value is not an integer or out of range') end
  if live(k) == nil then return 0 end
  if ms <= 0 then drop(k) else deadline_set(k, NOW + ms) end
  return 1
end

C.TIME = function()
  local now = NOW
  local s = floor(now / 1000)
  return {tostring(s), tostring(floor((now - s * 1000) * 1000))}
end

C.HGET = function(k, f)
  local h = get_hash(k)
  if h == nil then return false end
  local v = h[str(f)]
  if v == nil then return false end
  return v
end

C.HMGET = function(k, ...)
  local h = get_hash(k)
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
  local h = get_hash(k)
  if h == nil then h = {}; create(k, h, huge) end
  local added = 0
  for i = 1, n, 2 do
    local f, v = str((select(i, ...))), str((select(i + 1, ...)))
    if h[f] == nil then added = added + 1 end
    h[f] = v
  end
  return added
end

C.HDEL = function(k, ...)
  local h = get_hash(k)
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
  local h = get_hash(k)
  local out, i = {}, 0
  if h == nil then return out end
  for f, v in pairs(h) do out[i + 1] = f; out[i + 2] = v; i = i + 2 end
  return out
end

-- Sorted set: m = {member -> score}; o[h..t] = members sorted by (score, member); p = members added
-- out of order since the last read (merged, sorted, before any ranged read). ZADD is O(1) amortised,
-- a read O(n + p log p) only after out-of-order adds, removing a lowest-score range O(log n + removed).
local function zless(m, a, b)
  local sa, sb = m[a], m[b]
  if sa ~= sb then return sa < sb end
  return a < b
end

local function znew()
  return setmetatable({m = {}, o = {}, h = 1, t = 0, p = nil}, ZSET)
end

local function znormalize(z)
  local p = z.p
  if p == nil then return end
  local m = z.m
  tsort(p, function(a, b) return zless(m, a, b) end)
  local o, h, t = z.o, z.h, z.t
  local out, j, i, q, np = {}, 0, h, 1, #p
  while i <= t or q <= np do
    local take_o
    if i > t then take_o = false elseif q > np then take_o = true else take_o = not zless(m, p[q], o[i]) end
    j = j + 1
    if take_o then out[j] = o[i]; i = i + 1 else out[j] = p[q]; q = q + 1 end
  end
  z.o, z.h, z.t, z.p = out, 1, j, nil
end

local function zcard(z)
  local n = z.t - z.h + 1
  if z.p ~= nil then n = n + #z.p end
  return n
end

-- first position in o[h..t] whose score is > s (strict) or >= s
local function zsearch(z, s, strict)
  local o, m = z.o, z.m
  local lo, hi = z.h, z.t
  while lo <= hi do
    local mid = floor((lo + hi) / 2)
    local ms = m[o[mid]]
    if ms < s or (strict and ms == s) then lo = mid + 1 else hi = mid - 1 end
  end
  return lo
end

local function zremove_member(z, mem)
  znormalize(z)
  local o = z.o
  for i = z.h, z.t do
    if o[i] == mem then
      for j = i, z.t - 1 do o[j] = o[j + 1] end
      o[z.t] = nil
      z.t = z.t - 1
      break
    end
  end
  z.m[mem] = nil
end

local function zinsert(z, mem, score)
  local m = z.m
  m[mem] = score
  local t = z.t
  if z.p == nil and (t < z.h or zless(m, z.o[t], mem)) then
    z.t = t + 1
    z.o[t + 1] = mem
  else
    local p = z.p
    if p == nil then p = {}; z.p = p end
    p[#p + 1] = mem
  end
end

C.ZADD = function(k, ...)
  local n = select('#', ...)
  if n == 0 or n % 2 ~= 0 then err('ERR syntax error') end
  local z = get_zset(k)
  if z == nil then z = znew(); create(k, z, huge) end
  local added, args = 0, {...} -- indexed, not select(i, ...): O(n) for n arguments, not O(n^2)
  for i = 1, n, 2 do
    local score, mem = num(args[i], 'value'), str(args[i + 1])
    if score ~= score then err('ERR value is not a valid float') end
    local old = z.m[mem]
    if old == nil then
      added = added + 1
      zinsert(z, mem, score)
    elseif old ~= score then
      zremove_member(z, mem)
      zinsert(z, mem, score)
    end
  end
  return added
end

C.ZCARD = function(k)
  local z = get_zset(k)
  if z == nil then return 0 end
  return zcard(z)
end

C.ZRANGE = function(k, start, stop, opt, ...)
  if select('#', ...) > 0 then err('ERR syntax error') end
  local withscores = false
  if opt ~= nil then
    if upper(str(opt)) ~= 'WITHSCORES' then err('ERR syntax error') end
    withscores = true
  end
  start, stop = num(start, 'value'), num(stop, 'value')
  local z = get_zset(k)
  local out = {}
  if z == nil then return out end
  znormalize(z)
  local len = z.t - z.h + 1
  if start < 0 then start = len + start end
  if stop < 0 then stop = len + stop end
  if start < 0 then start = 0 end
  if stop >= len then stop = len - 1 end
  local o, m, base, j = z.o, z.m, z.h - 1, 0
  for i = start + 1, stop + 1 do
    local mem = o[base + i]
    j = j + 1; out[j] = mem
    if withscores then j = j + 1; out[j] = fmt('%.17g', m[mem]) end
  end
  return out
end

local function zscore_value(s)
  if s == '-inf' then return -huge, false end
  if s == '+inf' or s == 'inf' then return huge, false end
  s = str(s)
  if sub(s, 1, 1) == '(' then return num(sub(s, 2), 'min or max'), true end
  return num(s, 'min or max'), false
end

C.ZCOUNT = function(k, min, max)
  local lo, lox = zscore_value(min)
  local hi, hix = zscore_value(max)
  local z = get_zset(k)
  if z == nil then return 0 end
  znormalize(z)
  local n = zsearch(z, hi, not hix) - zsearch(z, lo, lox)
  if n < 0 then return 0 end
  return n
end

C.ZREMRANGEBYSCORE = function(k, min, max)
  local lo, lox = zscore_value(min)
  local hi, hix = zscore_value(max)
  local z = get_zset(k)
  if z == nil then return 0 end
  znormalize(z)
  local first = zsearch(z, lo, lox)
  local last = zsearch(z, hi, not hix) - 1
  if last < first then return 0 end
  local o, m, h, t = z.o, z.m, z.h, z.t
  for i = first, last do m[o[i]] = nil end
  local removed = last - first + 1
  if first == h then
    for i = first, last do o[i] = nil end
    z.h = last + 1
    if z.h > 64 and z.h > 2 * (t - z.h + 1) then -- compact a dead prefix larger than the live part
      local out, j = {}, 0
      for i = z.h, t do j = j + 1; out[j] = o[i] end
      z.o, z.h, z.t = out, 1, j
    end
  else
    local j = first - 1
    for i = last + 1, t do j = j + 1; o[j] = o[i] end
    for i = j + 1, t do o[i] = nil end
    z.t = j
  end
  if z.t < z.h then drop(k) end
  return removed
end

local function dispatch(cmd, ...)
  local f = C[cmd]
  if f == nil then
    if type(cmd) ~= 'string' then err('ERR Please specify at least one argument for this redis lib call') end
    f = C[upper(cmd)]
    if f == nil then err("ERR unknown command '" .. cmd .. "' (not in the throttlekit lupa shim allowlist)") end
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

-- Redis' Lua -> reply conversion: numbers truncated toward zero, true -> 1, false -> nil, a table to an
-- array cut at the first nil, {err=...} raised, {ok=...} its status. Nested arrays stay Lua tables.
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

-- (is_array, items...): true for an array reply of numbers and strings only (the common case: Python
-- takes its items as they come, without looking at each one's type), 'nested' for an array with any
-- other item (a nested array), false for a scalar reply (one item)
local function convert(r)
  if type(r) == 'table' and r.err == nil and r.ok == nil then
    local n, flat = 0, true
    while true do
      local v = r[n + 1]
      if v == nil then break end
      v = conv1(v)
      if v == nil then break end
      local t = type(v)
      if t ~= 'number' and t ~= 'string' then flat = 'nested' end
      r[n + 1] = v
      n = n + 1
    end
    return flat, unpack(r, 1, n)
  end
  return false, conv1(r)
end

local SAFE = {
  math = math, string = string, table = table, tonumber = tonumber, tostring = tostring, type = type,
  pairs = pairs, ipairs = ipairs, next = next, unpack = unpack, select = select, error = error,
  pcall = pcall, assert = assert, redis = redis,
}
-- the sandbox globals, bound as locals of the compiled chunk (same values, no global lookups per call)
local NAMES = {}
for name in pairs(SAFE) do NAMES[#NAMES + 1] = name end
tsort(NAMES)
local SHADOW = 'local KEYS, ARGV, ' .. tconcat(NAMES, ', ') .. ' = KEYS, ARGV, ' .. tconcat(NAMES, ', ') .. ' '

local function make_env(KEYS, ARGV)
  local env = {KEYS = KEYS, ARGV = ARGV}
  return setmetatable(env, {
    __index = function(_, k)
      local v = SAFE[k]
      if v == nil then error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2) end
      return v
    end,
    __newindex = function(_, k) error("Script attempted to create global variable '" .. tostring(k) .. "'", 2) end,
  })
end

-- the body as a function of the chunk: the prologue (constant) runs once, the body per call; the
-- added text shares lines with the script's own so error line numbers are the loader's
local function load_body(prologue, body, name, KEYS, ARGV)
  local src = SHADOW .. prologue .. 'return function() ' .. body .. '\nend'
  local chunk, cerr = loadstring(src, '=' .. name)
  if chunk == nil then return nil, cerr end
  setfenv(chunk, make_env(KEYS, ARGV))
  local ok, fn = pcall(chunk)
  if not ok then return nil, fn end
  return fn
end

local function compile(prologue, body, name, nkeys, nargs)
  local KEYS, ARGV = {}, {}
  local fn, cerr = load_body(prologue, body, name, KEYS, ARGV)
  if fn == nil then return nil, cerr end
  local params, assign = {'t'}, {}
  for i = 1, nkeys do params[#params + 1] = 'k' .. i; assign[#assign + 1] = 'K[' .. i .. ']=k' .. i end
  for i = 1, nargs do params[#params + 1] = 'a' .. i; assign[#assign + 1] = 'A[' .. i .. ']=a' .. i end
  local gen = 'local set_now, convert, fn, K, A = ...\nreturn function(' .. tconcat(params, ',') ..
    ')\nset_now(t)\n' .. tconcat(assign, '\n') .. '\nreturn convert(fn())\nend'
  local factory = loadstring(gen, '=runner:' .. name)
  return factory(function(t) NOW, fresh = t, nil end, convert, fn, KEYS, ARGV)
end

local function item(v)
  if type(v) == 'number' then
    if v >= 0 then return floor(v) end
    return ceil(v)
  end
  return conv1(v)
end

local function items(r, n)
  local out = {}
  for i = 1, n do out[i] = item(r[i]) end
  return unpack(out, 1, n)
end

-- the slow end of a bound call: a script error or an error reply goes to `fail` (a Python function that
-- raises ScriptError), any other reply is converted generically
local function finish(fail, ok, r, n)
  if not ok then fail(tostring(r)) end
  if type(r) ~= 'table' then return item(r) end
  if r.err ~= nil then fail(tostring(r.err)) end
  if r.ok ~= nil then return r.ok end
  local ok2, a, b, c, d, e, f, g = pcall(items, r, n)
  if not ok2 then fail(tostring(a)) end
  if n <= 7 then return a, b, c, d, e, f, g end
  return items(r, n)
end

-- the wall clock in epoch ms (LuaJIT FFI clock_gettime(CLOCK_REALTIME), as Python's time.time_ns()), or
-- nil where unavailable (PUC Lua, no FFI): a bound call can then read its clock without leaving Lua
local wallclock = nil
do
  local has_ffi, ffi = pcall(require, 'ffi')
  if has_ffi then
    local ok, clock = pcall(function()
      ffi.cdef('typedef struct { long tv_sec; long tv_nsec; } tk_timespec; int clock_gettime(int, tk_timespec *);')
      local ts, lib = ffi.new('tk_timespec'), ffi.C
      local function read()
        lib.clock_gettime(0, ts)
        return tonumber(ts.tv_sec) * 1000 + floor(tonumber(ts.tv_nsec) / 1000000)
      end
      read()
      return read
    end)
    if ok then wallclock = clock end
  end
end

-- bind: a private copy of a single-key transform whose ARGV[2..n+1] are fixed to `...`; a call crosses
-- the boundary as (clock, key, now, last) and returns the first `nreply` reply items, converted by
-- Redis' rules; now == -1 (the server-clock sentinel) is the executor clock, as the transform's TIME
-- would say. An error reply calls `fail(message)`, which raises in Python. A script fault (a Lua error:
-- a bug in a transform or a WRONGTYPE) goes to `fail` too when `guarded`; unguarded, it propagates as
-- the runtime's own error and the caller converts it: no pcall, so LuaJIT traces the whole decision
-- (measured: ~0.4 us instead of ~0.57 us per gcra call). With `wall` (and a wall clock here) the call is
-- (key, now, last) and reads the wall clock itself; the second result says which. `ntail` > 1: the call
-- passes the last `ntail` ARGV itself, (clock, key, now, a1, .., a_ntail) (always guarded).
local function direct(f) return true, f() end

local function bind(prologue, body, name, nreply, fail, wall, guarded, ntail, ...)
  local KEYS, ARGV = {}, {}
  local fn, cerr = load_body(prologue, body, name, KEYS, ARGV)
  if fn == nil then return nil, cerr end
  local n = select('#', ...)
  for i = 1, n do ARGV[i + 1] = (select(i, ...)) end
  local last = n + 2
  local five, four, seven = nreply == 5, nreply == 4, nreply == 7
  -- guarded: a script fault goes to `fail` through pcall; unguarded: no pcall (LuaJIT traces through the
  -- direct call), the fault propagates as the runtime's error
  local invoke = guarded and pcall or direct
  if ntail > 1 then
    local function run_tail(t, k, now, ...)
      NOW, fresh = t, nil
      KEYS[1] = k
      if now == -1 then now = t end
      ARGV[1] = now
      for i = 1, ntail do ARGV[n + 1 + i] = (select(i, ...)) end
      local ok, r = pcall(fn)
      return finish(fail, ok, r, nreply)
    end
    if wall and wallclock ~= nil then
      local clock = wallclock
      return function(k, now, ...) return run_tail(clock(), k, now, ...) end, true
    end
    return run_tail, false
  end
  local function run(t, k, now, cost)
    NOW, fresh = t, nil
    KEYS[1] = k
    if now == -1 then now = t end
    ARGV[1] = now
    ARGV[last] = cost
    local ok, r = invoke(fn)
    if ok and type(r) == 'table' and r.err == nil and r.ok == nil then
      if five then
        local a, b, c, d, e = r[1], r[2], r[3], r[4], r[5]
        if type(a) == 'number' and type(b) == 'number' and type(c) == 'number' and type(d) == 'number'
          and type(e) == 'number' then -- the decision: Redis' truncation toward zero, inline
          return (a >= 0 and floor(a) or ceil(a)), (b >= 0 and floor(b) or ceil(b)),
            (c >= 0 and floor(c) or ceil(c)), (d >= 0 and floor(d) or ceil(d)), (e >= 0 and floor(e) or ceil(e))
        end
        return item(a), item(b), item(c), item(d), item(e)
      end
      -- the concurrency guard's release (4 items) and acquire (7, the last its text ticket)
      if four and r[4] ~= nil then return item(r[1]), item(r[2]), item(r[3]), item(r[4]) end
      if seven and type(r[7]) == 'string' then
        return item(r[1]), item(r[2]), item(r[3]), item(r[4]), item(r[5]), item(r[6]), r[7]
      end
    end
    return finish(fail, ok, r, nreply)
  end
  if wall and wallclock ~= nil then
    local clock = wallclock
    return function(k, now, cost) return run(clock(), k, now, cost) end, true
  end
  return run, false
end

local function flush()
  data, meta = {}, {}
  nkeys, since_sweep, since_full_sweep, hand, earliest = 0, 0, 0, nil, huge
end

-- (kind, value, deadline) of a live key (value: the string, the hash table itself, or a zset as an
-- ascending array of {member, score}; deadline nil = persistent), or nil; does not reference the key
local function dump(k)
  local v = data[k]
  if v == nil then return nil end
  local e = meta[k]
  if e < 0 then e = -e end
  if e < NOW then return nil end
  if e == huge then e = nil end
  local kind = kind_of(v)
  if kind ~= 'zset' then return kind, v, e end
  znormalize(v)
  local out, j = {}, 0
  for i = v.h, v.t do j = j + 1; out[j] = {v.o[i], v.m[v.o[i]]} end
  return kind, out, e
end

-- install one key (kind 'string' | 'hash' (a table field -> text) | 'zset' (an array of {member,
-- score})); an already expired deadline installs nothing. The input table is copied, never kept.
local function load(t, k, kind, value, deadline)
  NOW, fresh = t, nil
  if live(k) ~= nil then drop(k) end
  if deadline ~= nil and deadline < t then return end
  local v
  if kind == 'string' then
    v = value
  elseif kind == 'hash' then
    v = {}
    for f, x in pairs(value) do v[f] = x end
  elseif kind == 'zset' then
    v = znew()
    local p = {}
    for _, pair in ipairs(value) do
      if v.m[pair[1]] == nil then p[#p + 1] = pair[1] end
      v.m[pair[1]] = pair[2]
    end
    if #p > 0 then v.p = p end
    znormalize(v)
  else
    error('unknown kind ' .. tostring(kind))
  end
  create(k, v, deadline or huge)
end

-- is the live value `v` (kind `kind`) what `load` was given (`input`, of kind `kind0`)?
local function same_value(kind0, input, kind, v)
  if kind ~= kind0 then return false end
  if kind == 'string' then return v == input end
  if kind == 'hash' then
    for f, x in pairs(v) do if input[f] ~= x then return false end end
    for f in pairs(input) do if v[f] == nil then return false end end
    return true
  end
  local m, n = v.m, 0
  for _, pair in ipairs(input) do
    if m[pair[1]] ~= pair[2] then return false end
    n = n + 1
  end
  for _ in pairs(m) do n = n - 1 end
  return n == 0
end

local function pack(...) return {n = select('#', ...), ...} end

-- empty the keyspace after a step that used only `k` (no new tables: the common case), else flush
local function clear(k)
  if nkeys == 1 and data[k] ~= nil then
    data[k], meta[k] = nil, nil
    nkeys, since_sweep, since_full_sweep, hand, earliest = 0, 0, 0, nil, huge
  elseif nkeys ~= 0 then
    flush()
  end
end

-- what a step reports for key k after its run: true (as loaded: nothing to write), false (gone), or
-- its (kind, value, deadline) as `dump` gives them; kind0, v0, d0 are what `load` was given
local function outcome(k, kind0, v0, d0)
  local kind, v, e = dump(k)
  if kind == nil then return not kind0 end
  if kind0 and e == d0 and same_value(kind0, v0, kind, data[k]) then return true end
  return kind, v, e
end

local function finish1(t, write, k, kind0, v0, d0, ok, ...)
  if not ok then clear(k); error((...), 0) end
  if not write then clear(k); return ... end
  NOW, fresh = t, nil
  local a, b, c = outcome(k, kind0, v0, d0)
  clear(k)
  return a, b, c, ...
end

-- bind_step(prologue, body, name, ntail, ...): the single-key form of `step` (below), over a private copy
-- of a single-key transform whose ARGV[2..n+1] are fixed to `...` (as bind; the constant arguments cross
-- the boundary once, here, not on every decision) and without any table of its own. The returned
-- function is (t, write, k, kind, value, deadline, now, a1, .., a_ntail) with ARGV[1] = now as given
-- (already resolved); it returns the key's outcome (three values, see `outcome`; none without `write`),
-- then the transform's (is_array, items...), and empties the keyspace on every exit.
local function bind_step(prologue, body, name, ntail, ...)
  local KEYS, ARGV = {}, {}
  local fn, cerr = load_body(prologue, body, name, KEYS, ARGV)
  if fn == nil then return nil, cerr end
  local n = select('#', ...)
  for i = 1, n do ARGV[i + 1] = (select(i, ...)) end
  local function run(t)
    NOW, fresh = t, nil
    return convert(fn())
  end
  if ntail == 1 then
    local last = n + 2
    return function(t, write, k, kind0, v0, d0, now, a)
      if kind0 then load(t, k, kind0, v0, d0) end
      KEYS[1], ARGV[1], ARGV[last] = k, now, a
      return finish1(t, write, k, kind0, v0, d0, pcall(run, t))
    end
  end
  return function(t, write, k, kind0, v0, d0, now, ...)
    if kind0 then load(t, k, kind0, v0, d0) end
    KEYS[1], ARGV[1] = k, now
    for i = 1, ntail do ARGV[n + 1 + i] = (select(i, ...)) end
    return finish1(t, write, k, kind0, v0, d0, pcall(run, t))
  end
end

-- step(run, t, write, nkeys, k1, kind1, value1, deadline1, ..., arg1, ...): the snapshot stores'
-- whole decision in one call: load each key (kind false: absent) into the empty keyspace, run the
-- compiled transform `run` (from compile) on the keys and args, and with `write` report each key's
-- outcome (three values: see `outcome`, padded with nils); then empty the keyspace, on every exit.
-- Returns the outcomes (none without `write`), then the runner's (is_array, items...). A transform
-- error is re-raised, unchanged, after the keyspace is emptied. bind_step is the single-key form.
local function step(run, t, write, nk, ...)
  local spec = pack(...)
  local call = {}
  for i = 1, nk do
    local j = 4 * i - 3
    local k, kind = spec[j], spec[j + 1]
    call[i] = k
    if kind then load(t, k, kind, spec[j + 2], spec[j + 3]) end
  end
  local nc = spec.n - 3 * nk
  for i = nk + 1, nc do call[i] = spec[3 * nk + i] end
  local res = pack(pcall(run, t, unpack(call, 1, nc)))
  if not res[1] then flush(); error(res[2], 0) end
  local out, o = {}, 0
  if write then
    NOW, fresh = t, nil
    for i = 1, nk do
      local j = 4 * i - 3
      out[o + 1], out[o + 2], out[o + 3] = outcome(spec[j], spec[j + 1], spec[j + 2], spec[j + 3])
      o = o + 3
    end
  end
  flush()
  for i = 2, res.n do out[o + i - 1] = res[i] end
  return unpack(out, 1, o + res.n - 1)
end

local api = {}
api.compile = compile
api.bind = bind
api.step = step
api.bind_step = bind_step
api.count = function() return nkeys end
api.stats = function() return nkeys, evicted, expired, collectgarbage('count') end
api.collect = function() collectgarbage('collect'); return collectgarbage('count') end
api.sweep = function(t) NOW = t; sweep(); return nkeys end
api.flush = flush
api.dump = function(t, k)
  NOW, fresh = t, nil
  local kind, v, e = dump(k)
  if kind == nil then return nil end
  if kind == 'hash' then
    local out = {}
    for f, x in pairs(v) do out[f] = x end
    v = out
  end
  return kind, v, e
end
api.del = function(t, k)
  NOW, fresh = t, nil
  if live(k) == nil then return 0 end
  drop(k)
  return 1
end
api.load = load
return api
