--[[ sliding_window: consume `cost` from a sub-bucketed rolling window (error <= one bucket).
KEYS[1]  state key: hash ring, field (tick mod (buckets+1)) = "<tick>:<count>"
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  window_ms  number  ms
ARGV[3]  limit      number  units per window
ARGV[4]  buckets    number  sub-buckets per window (integer >= 1)
ARGV[5]  cost       number  units (> 0)
Reply    {allowed 0|1, limit, remaining, reset_at (epoch ms), retry_after_ms}
Writes   HSET current slot + PEXPIRE ceil(window_ms + window_ms/buckets) on allow only.
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/ring_estimate"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local window, limit, buckets, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local c, w, weight, full, oldest, current = ring_estimate(KEYS[1], now, window, buckets)
local estimate = full + oldest * weight
local projected = estimate + cost
local reset_at = math.ceil((c + 1) * w + window)
if projected <= limit then
  rcall('HSET', KEYS[1], c % (buckets + 1), c .. ':' .. (current + cost))
  rcall('PEXPIRE', KEYS[1], math.ceil(window + w))
  return clamp53({1, limit, math.max(0, math.floor(limit - projected)), reset_at, 0})
end
local d = projected - limit
local retry
if oldest > 0 and d <= oldest * weight then
  retry = math.ceil(d * w / oldest)
else
  retry = math.ceil((c + 1) * w - now)
end
return clamp53({0, limit, math.max(0, math.floor(limit - estimate)), reset_at, math.max(1, retry)})
