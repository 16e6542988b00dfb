--[[ esc_lease: lease up to `tokens` units from one key's regional escrow (L2, spec 7.2 RedisRegionalEscrow).
The escrow holds units the region leased from the cross-region coordinator for one window; an entry whose
window has ended (or that does not exist) grants nothing.
KEYS[1]  escrow hash {balance = units held, expires_at = the end of the window they were granted for,
         source_lease = that window's start}; expires at the window end
ARGV[1]  now_ms   number  epoch ms; -1 = server clock
ARGV[2]  tokens   number  units wanted (>= 0; 0 grants nothing)
ARGV[3]  has      number  units the caller already holds for this window (reported, never granted)
ARGV[4]  cost     number  units the caller's request needs: allowed iff has + granted >= cost
ARGV[5]  limit    number  the key's budget per window (reported as the decision's limit)
Reply    {granted, balance, expires_at, allowed, limit, remaining, reset_at, retry_after_ms}
         granted = min(tokens, balance) while now < expires_at, else 0 (balance and expires_at 0 when
         there is no live entry); the decision is the request's when answered from this lease: allowed iff
         has + granted >= cost, remaining = floor(has + granted), reset_at = expires_at, retry = time to it
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
local now = resolve_now(ARGV[1])
local tokens, has, cost, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local st = rcall('HMGET', KEYS[1], 'balance', 'expires_at')
local balance, exp = tonumber(st[1]), tonumber(st[2])
local granted = 0
if balance == nil or exp == nil or now >= exp then
  balance, exp = 0, 0
else
  granted = math.max(0, math.min(tokens, balance))
  if granted > 0 then
    balance = balance - granted
    rcall('HSET', KEYS[1], 'balance', fmt17(balance))
  end
end
local held = has + granted
if held >= cost then
  return {granted, balance, exp, 1, limit, math.max(0, math.floor(held)), exp, 0}
end
return {granted, balance, exp, 0, limit, math.max(0, math.floor(held)), exp, math.max(0, exp - now)}
