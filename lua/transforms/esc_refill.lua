--[[ esc_refill: put units the coordinator granted for one window into the region's escrow (L2, spec 7.2)
and take `take` of them for the caller in the same step (one round trip; no other instance of the region
can drain the escrow in between). A grant whose window (window_start + window_ms) has already ended is
dropped; an entry of another (older) window, or none, is replaced; an entry of the same window is added to;
an entry of a later window keeps its units and the (lagging) grant is dropped.
KEYS[1]  escrow hash (see esc_lease)
ARGV[1]  now_ms        number  epoch ms; -1 = server clock
ARGV[2]  window_ms     number  window length (>= 1)
ARGV[3]  granted       number  units the coordinator granted (>= 0)
ARGV[4]  window_start  number  start of the window they were granted for (the source lease)
ARGV[5]  take          number  units the caller takes out at once (>= 0)
ARGV[6]  has           number  units the caller already holds for this window
ARGV[7]  cost          number  units the caller's request needs: allowed iff has + taken >= cost
ARGV[8]  limit         number  the key's budget per window (reported as the decision's limit)
Reply    {taken, balance, expires_at, applied, allowed, limit, remaining, reset_at, retry_after_ms}
         applied 0 = the grant was dropped (nothing written, nothing taken); balance = units left in the
         escrow; expires_at = window_start + window_ms; remaining = floor(has + taken), retry = time to
         expires_at (>= 1) when denied
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
local now = resolve_now(ARGV[1])
local w, granted, ws = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local take, has, cost, limit = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local exp = ws + w
local st = rcall('HMGET', KEYS[1], 'balance', 'expires_at', 'source_lease')
local balance, stored, src = tonumber(st[1]), tonumber(st[2]), tonumber(st[3])
local applied, taken = 0, 0
if now >= exp or (stored ~= nil and stored > exp) then
  -- the grant's window is over, or the escrow already holds a later window: the grant is dropped
  if balance == nil or stored ~= exp then balance = 0 end
else
  if balance == nil or stored ~= exp or src ~= ws then balance = 0 end
  balance = balance + math.max(0, granted)
  taken = math.max(0, math.min(take, balance))
  balance = balance - taken
  applied = 1
  rcall('HSET', KEYS[1], 'balance', fmt17(balance), 'expires_at', fmt17(exp), 'source_lease', fmt17(ws))
  rcall('PEXPIRE', KEYS[1], math.max(1, exp - now))
end
local held = has + taken
if held >= cost then
  return {taken, balance, exp, applied, 1, limit, math.max(0, math.floor(held)), exp, 0}
end
return {taken, balance, exp, applied, 0, limit, math.max(0, math.floor(held)), exp, math.max(1, exp - now)}
