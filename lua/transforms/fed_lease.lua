--[[ fed_lease: lease up to `tokens` units of one key's per-window budget from the cross-region coordinator.
The window is the store's: start = anchor + floor((now - anchor) / window_ms) * window_ms, so every region
leasing through one store (Redis TIME) agrees on its boundary; the grant expires with it.
KEYS[1]  coordinator hash {budget = units not yet leased this window, expiresAt = the window's end,
         rec_<window start>:<reconciler> = units credited back by that reconciler}; expires at the window end
ARGV[1]  now_ms          number  epoch ms; -1 = server clock
ARGV[2]  window_ms       number  window length (>= 1)
ARGV[3]  anchor          number  epoch ms a window starts at (0 = epoch-aligned)
ARGV[4]  budget          number  units per window for this key (the per-key budget, whole units)
ARGV[5]  tokens          number  units wanted (>= 0; 0 grants nothing)
ARGV[6]  has             number  units the caller already holds for this window (reported, never granted)
ARGV[7]  cost            number  units the caller's request needs: allowed iff has + granted >= cost
ARGV[8]  for_expires_at  number  -1 = lease for the store's current window; else the end of the window the
                                 caller leases for: any other window (ended, or not begun) grants nothing
Reply    {granted, expires_at, ttl_ms, budget_left, allowed, limit, remaining, reset_at, retry_after_ms}
         granted in [0, tokens] (partial grants are legal); ttl_ms = expires_at - now (>= 1); the decision
         is the request's when it must be answered from this lease: allowed iff has + granted >= cost,
         limit = budget, remaining = floor(has + granted), reset_at = expires_at, retry = ttl_ms when denied
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
local now = resolve_now(ARGV[1])
local w, anchor, per = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens, has, cost, want = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local exp = anchor + math.floor((now - anchor) / w) * w + w
local st = rcall('HMGET', KEYS[1], 'budget', 'expiresAt')
local budget, stored = tonumber(st[1]), tonumber(st[2])
local granted = 0
if stored ~= nil and stored > exp then
  -- the key already belongs to a later window (this caller's clock lags): nothing of it is ours to grant
  budget = 0
else
  if budget == nil or stored ~= exp then budget = per end
  if want == -1 or want == exp then
    granted = math.max(0, math.min(tokens, budget))
  end
  budget = budget - granted
  rcall('HSET', KEYS[1], 'budget', fmt17(budget), 'expiresAt', fmt17(exp))
  rcall('PEXPIRE', KEYS[1], math.max(1, exp - now))
end
local ttl = math.max(1, exp - now)
local held = has + granted
if held >= cost then
  return {granted, exp, ttl, budget, 1, per, math.max(0, math.floor(held)), exp, 0}
end
return {granted, exp, ttl, budget, 0, per, math.max(0, math.floor(held)), exp, ttl}
