--[[ sliding_window_log_forecast: how many `cost` requests fit now and when entries age out. Read-only.
KEYS[1]  state key (sorted set, see sliding_window_log)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  window_ms  number  ms
ARGV[3]  limit      number  units per window
ARGV[4]  cost       number  units per request (> 0)
Reply    {spendable_now, next_replenish_at (epoch ms), full_at (epoch ms)}
]]
--- @include "lib/now"
--- @include "lib/log_live"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local window, limit, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local live, count = log_live(KEYS[1], now, window)
local next_at, full_at = now, now
if count > 0 then
  next_at = math.ceil(live[1] + window)
  full_at = math.ceil(live[count] + window)
end
return clamp53({math.floor(math.max(0, limit - count) / cost), next_at, full_at})
