--[[ fixed_window: consume `cost` from an epoch-aligned window counter.
KEYS[1]  state key: hash {s = window start epoch ms, c = count}
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  limit      number  units per window
ARGV[3]  window_ms  number  ms
ARGV[4]  cost       number  units (> 0)
Reply    {allowed 0|1, limit, remaining, reset_at (window end, epoch ms), retry_after_ms}
Writes   HSET s c + PEXPIRE max(1, ceil(reset_at - now)) on allow only.
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/window_count"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local limit, window, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local window_start = math.floor(now / window) * window
local reset_at = window_start + window
local count = window_count(KEYS[1], window_start)
if count + cost <= limit then
  local nc = count + cost
  rcall('HSET', KEYS[1], 's', fmt17(window_start), 'c', fmt17(nc))
  rcall('PEXPIRE', KEYS[1], math.max(1, math.ceil(reset_at - now)))
  return clamp53({1, limit, math.max(0, math.floor(limit - nc)), math.ceil(reset_at), 0})
end
return clamp53({0, limit, math.max(0, math.floor(limit - count)), math.ceil(reset_at), math.ceil(reset_at - now)})
