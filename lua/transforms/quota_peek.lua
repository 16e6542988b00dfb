--[[ quota_peek: what a cost-1 request would see now, without consuming. Read-only.
KEYS[1]  state key (hash s/c, see quota)
ARGV[1..7] as quota (now_ms, limit, mode, period_ms, anchor, offset_ms, week_starts_on)
Reply    {allowed 0|1, limit, remaining, reset_at (epoch ms), retry_after_ms}
]]
--- @include "lib/now"
--- @include "lib/quota_period"
--- @include "lib/window_count"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local limit = tonumber(ARGV[2])
local start, reset = quota_period(now, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), tonumber(ARGV[7]))
local count = window_count(KEYS[1], start)
local remaining = math.max(0, math.floor(limit - count))
if count + 1 <= limit then
  return clamp53({1, limit, remaining, math.ceil(reset), 0})
end
return clamp53({0, limit, remaining, math.ceil(reset), math.ceil(reset - now)})
