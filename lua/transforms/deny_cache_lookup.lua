--[[ deny_cache_lookup: answer from a cached L2 denial while it holds (two-tier cached-deny mode).
The local denial keeps the cached limit and reset_at and retries at the cached instant, whatever the
new request's cost. Read-only: a stale entry is left to its PEXPIRE and overwritten by the next put.
KEYS[1]  cache key: hash {u = until epoch ms, l = limit, r = reset_at epoch ms}
ARGV[1]  now_ms  number  epoch ms; -1 = server clock
Reply    {hit 0|1, allowed (0), limit, remaining (0), reset_at, retry_after_ms = ceil(until - now)}
         (every field 0 when hit is 0: no entry, or now >= until)
]]
--- @include "lib/now"
local now = resolve_now(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'u', 'l', 'r')
if not st[1] then return {0, 0, 0, 0, 0, 0} end
local until_ms = tonumber(st[1])
if now >= until_ms then return {0, 0, 0, 0, 0, 0} end
return {1, 0, tonumber(st[2]), 0, tonumber(st[3]), math.ceil(until_ms - now)}
