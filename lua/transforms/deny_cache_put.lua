--[[ deny_cache_put: remember an L2 denial until now + its retry (two-tier cached-deny mode).
KEYS[1]  cache key (hash u/l/r, see deny_cache_lookup)
ARGV[1]  now_ms          number  epoch ms of the check that was denied; -1 = server clock
ARGV[2]  limit           number  the denial's limit
ARGV[3]  reset_at        number  the denial's reset_at, epoch ms
ARGV[4]  retry_after_ms  number  the denial's retry, ms (>= 0)
Reply    {until}  epoch ms (now + retry_after_ms) until which lookups answer locally
Writes   HSET u l r (replacing any entry) + PEXPIRE max(1, ceil(retry_after_ms))
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
local now = resolve_now(ARGV[1])
local retry = tonumber(ARGV[4])
local until_ms = now + retry
rcall('HSET', KEYS[1], 'u', fmt17(until_ms), 'l', fmt17(tonumber(ARGV[2])), 'r', fmt17(tonumber(ARGV[3])))
rcall('PEXPIRE', KEYS[1], math.max(1, math.ceil(retry)))
return {until_ms}
