--[[ sliding_window_log_peek: what a cost-1 request would see now, without consuming. Read-only.
KEYS[1]  state key (sorted set, see sliding_window_log)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  window_ms  number  ms
ARGV[3]  limit      number  units per window
Reply    {allowed 0|1, limit, remaining, reset_at (epoch ms), retry_after_ms}
]]
--- @include "lib/now"
--- @include "lib/log_live"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local window, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local live, count = log_live(KEYS[1], now, window)
local oldest = now
if count > 0 then oldest = live[1] end
local remaining = math.max(0, limit - count)
if count + 1 <= limit then
  return clamp53({1, limit, remaining, math.ceil(oldest + window), 0})
end
local retry = window
if count > 0 then
  local k = count + 1 - limit
  if k < 1 then k = 1 elseif k > count then k = count end
  retry = math.max(1, math.ceil(live[k] + window - now))
end
return clamp53({0, limit, remaining, math.ceil(oldest + window), retry})
