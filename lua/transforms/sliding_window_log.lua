--[[ sliding_window_log: consume `cost` from an exact trailing-window log (O(limit) memory).
KEYS[1]  state key: sorted set, one member "<now>-<n>" per admitted unit, score = admission time (ms)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  window_ms  number  ms
ARGV[3]  limit      number  units per window
ARGV[4]  cost       number  units (> 0; a fractional cost takes ceil(cost) units, as core >= 1.5)
Reply    {allowed 0|1, limit, remaining, reset_at (epoch ms), retry_after_ms}
Writes   prunes entries with score <= now - window_ms; on allow ZADD + PEXPIRE max(1, ceil(window_ms)).
]]
local rcall = redis.call
--- @include "lib/now"
local now = resolve_now(ARGV[1])
local window, limit, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local key = KEYS[1]
rcall('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = rcall('ZCARD', key)
local units = math.ceil(cost)
if count + units <= limit then
  for i = 1, units do
    rcall('ZADD', key, now, now .. '-' .. (count + i))
  end
  rcall('PEXPIRE', key, math.max(1, math.ceil(window)))
  local first = rcall('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {1, limit, math.max(0, limit - (count + units)), math.ceil(tonumber(first[2]) + window), 0}
end
local retry = window
local oldest = now
if count > 0 then
  local k = count + units - limit
  if k < 1 then k = 1 elseif k > count then k = count end
  local ref = rcall('ZRANGE', key, k - 1, k - 1, 'WITHSCORES')
  retry = math.max(1, math.ceil(tonumber(ref[2]) + window - now))
  oldest = tonumber(rcall('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
end
return {0, limit, math.max(0, limit - count), math.ceil(oldest + window), retry}
