--[[ quota_forecast: how many `cost` requests fit now and when the period resets. Read-only.
KEYS[1]  state key (hash s/c, see quota)
ARGV[1..7] as quota (now_ms, limit, mode, period_ms, anchor, offset_ms, week_starts_on)
ARGV[8]  cost  number  units per request (> 0)
Reply    {spendable_now, next_replenish_at (= period end), full_at (= period end)}
]]
--- @include "lib/now"
--- @include "lib/quota_period"
local now = resolve_now(ARGV[1])
local limit, cost = tonumber(ARGV[2]), tonumber(ARGV[8])
local start, reset = quota_period(now, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), tonumber(ARGV[7]))
local st = redis.call('HMGET', KEYS[1], 's', 'c')
local count = 0
if st[1] and st[2] and tonumber(st[1]) == start then count = tonumber(st[2]) end
return {math.floor(math.max(0, limit - count) / cost), math.ceil(reset), math.ceil(reset)}
