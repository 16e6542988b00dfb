--[[ quota_forecast: how many `cost` requests fit now and when the period resets. Read-only.
KEYS[1]  state key (hash s/c, see quota)
ARGV[1..7] as quota (now_ms, limit, mode, period_ms, anchor, offset_ms, week_starts_on)
ARGV[8]  cost  number  units per request (> 0)
Reply    {spendable_now, next_replenish_at (= period end), full_at (= period end)}
]]
--- @include "lib/now"
--- @include "lib/quota_period"
--- @include "lib/window_count"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local limit, cost = tonumber(ARGV[2]), tonumber(ARGV[8])
local start, reset = quota_period(now, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), tonumber(ARGV[7]))
local count = window_count(KEYS[1], start)
return clamp53({math.floor(math.max(0, limit - count) / cost), math.ceil(reset), math.ceil(reset)})
