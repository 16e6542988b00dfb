--[[ sliding_window_log_forecast: how many `cost` requests fit now and when entries age out. Read-only.
KEYS[1]  state key (sorted set, see sliding_window_log)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  window_ms  number  ms
ARGV[3]  limit      number  units per window
ARGV[4]  cost       number  units per request (> 0)
Reply    {spendable_now, next_replenish_at (epoch ms), full_at (epoch ms)}
]]
--- @include "lib/now"
local now = resolve_now(ARGV[1])
local window, limit, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local flat = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local first, last, count = nil, nil, 0
for i = 2, #flat, 2 do
  local t = tonumber(flat[i])
  if t > now - window then
    count = count + 1
    if not first then first = t end
    last = t
  end
end
local next_at, full_at = now, now
if first then
  next_at = math.ceil(first + window)
  full_at = math.ceil(last + window)
end
return {math.floor(math.max(0, limit - count) / cost), next_at, full_at}
