--[[ lease_spend: spend `cost` from a local lease; never synthesizes a denial (shortfall = refresh).
KEYS[1]  state key (hash c/e, see lease_grant)
ARGV[1]  now_ms          number  epoch ms; -1 = server clock
ARGV[2]  cost            number  units (> 0)
ARGV[3]  limit           number  reported as Decision.limit on synthesized allows
ARGV[4]  ttl_ms          number  fallback reset_at offset before any grant carries an expiry
ARGV[5]  window_coupled  number  1 = credits left when the grant's window has ended are discarded
ARGV[6]  discard         number  1 = apply the window-coupled discard now (spend), 0 = skip it
                                 (spend_or_refresh after its single discard)
ARGV[7]  low_water       number  optional, units; > 0 = flag a proactive refill when an allowed spend
                                 leaves credits <= low_water (two-tier leased L1); absent or 0 = never
Reply    {needs_refresh 0|1, allowed, limit, remaining, reset_at, retry_after_ms, refill 0|1}
         (the decision fields and refill are 0 when needs_refresh is 1)
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
local now = resolve_now(ARGV[1])
local cost, limit, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local low = tonumber(ARGV[7]) or 0
local st = rcall('HMGET', KEYS[1], 'c', 'e')
local credits = tonumber(st[1] or '0')
local expires_at = nil
if st[2] then expires_at = tonumber(st[2]) end
if tonumber(ARGV[5]) == 1 and tonumber(ARGV[6]) == 1 and expires_at and now >= expires_at and credits > 0 then
  credits = 0
  rcall('HSET', KEYS[1], 'c', '0')
end
if credits >= cost then
  credits = credits - cost
  rcall('HSET', KEYS[1], 'c', fmt17(credits))
  local refill = 0
  if low > 0 and credits <= low then refill = 1 end
  return {0, 1, limit, math.max(0, math.floor(credits)), expires_at or (now + ttl), 0, refill}
end
return {1, 0, 0, 0, 0, 0, 0}
