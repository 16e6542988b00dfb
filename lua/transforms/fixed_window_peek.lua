--[[ fixed_window_peek: what a cost-1 request would see now, without consuming. Read-only.
KEYS[1]  state key (hash s/c, see fixed_window)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  limit      number  units per window
ARGV[3]  window_ms  number  ms
Reply    {allowed 0|1, limit, remaining, reset_at (epoch ms), retry_after_ms}
]]
--- @include "lib/now"
--- @include "lib/window_count"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local window_start = math.floor(now / window) * window
local reset_at = window_start + window
local count = window_count(KEYS[1], window_start)
local remaining = math.max(0, math.floor(limit - count))
if count + 1 <= limit then
  return clamp53({1, limit, remaining, math.ceil(reset_at), 0})
end
return clamp53({0, limit, remaining, math.ceil(reset_at), math.ceil(reset_at - now)})
