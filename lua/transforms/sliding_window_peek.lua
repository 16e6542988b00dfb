--[[ sliding_window_peek: what a cost-1 request would see now, without consuming. Read-only.
KEYS[1]  state key (hash ring, see sliding_window)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  window_ms  number  ms
ARGV[3]  limit      number  units per window
ARGV[4]  buckets    number  sub-buckets per window
Reply    {allowed 0|1, limit, remaining, reset_at (epoch ms), retry_after_ms}
]]
--- @include "lib/now"
--- @include "lib/ring_estimate"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local window, limit, buckets = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local c, w, weight, full, oldest = ring_estimate(KEYS[1], now, window, buckets)
local estimate = full + oldest * weight
local reset_at = math.ceil((c + 1) * w + window)
local remaining = math.max(0, math.floor(limit - estimate))
if estimate + 1 <= limit then
  return clamp53({1, limit, remaining, reset_at, 0})
end
local d = estimate + 1 - limit
local retry
if oldest > 0 and d <= oldest * weight then
  retry = math.ceil(d * w / oldest)
else
  retry = math.ceil((c + 1) * w - now)
end
return clamp53({0, limit, remaining, reset_at, math.max(1, retry)})
