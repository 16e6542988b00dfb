--[[ sliding_window_forecast: how many `cost` requests fit now and when capacity returns. Read-only.
KEYS[1]  state key (hash ring, see sliding_window)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  window_ms  number  ms
ARGV[3]  limit      number  units per window
ARGV[4]  buckets    number  sub-buckets per window
ARGV[5]  cost       number  units per request (> 0)
Reply    {spendable_now, next_replenish_at (next bucket boundary), full_at (epoch ms)}
]]
--- @include "lib/now"
--- @include "lib/ring_estimate"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local window, limit, buckets, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local c, w, weight, full, oldest = ring_estimate(KEYS[1], now, window, buckets)
local available = math.max(0, math.floor(limit - (full + oldest * weight)))
return clamp53({math.floor(available / cost), math.ceil((c + 1) * w), math.ceil((c + 1) * w + window)})
