--[[ sliding_window_log: consume `cost` from an exact trailing-window log (O(limit) memory).
KEYS[1]  state key: sorted set, one member "<now>-<n>" per admitted unit, score = admission time (ms)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  window_ms  number  ms
ARGV[3]  limit      number  units per window
ARGV[4]  cost       number  units (> 0; a fractional cost takes ceil(cost) units, as core >= 1.5)
Reply    {allowed 0|1, limit, remaining, reset_at (epoch ms), retry_after_ms}, clamped to +-(2^53-1)
Writes   prunes entries with score <= now - window_ms; on allow ZADD (in chunks of 1000 members) +
         PEXPIRE max(1, ceil(window_ms)). A request of more units than the limit is denied up front
         (same decision) without writing: the work of one request is O(log n) then, else O(units +
         pruned) with units <= limit <= the documented maximum (SlidingWindowLog.MAX_LIMIT).
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local window, limit, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local key = KEYS[1]
local units = math.ceil(cost)
if units > limit then
  -- never admissible: the denial is read with O(log n) commands, without pruning or adding entries
  local count = rcall('ZCOUNT', key, '(' .. fmt17(now - window), '+inf')
  local retry, oldest = window, now
  if count > 0 then
    local first = rcall('ZCARD', key) - count
    oldest = tonumber(rcall('ZRANGE', key, first, first, 'WITHSCORES')[2])
    retry = math.max(1, math.ceil(tonumber(rcall('ZRANGE', key, -1, -1, 'WITHSCORES')[2]) + window - now))
  end
  return clamp53({0, limit, math.max(0, limit - count), math.ceil(oldest + window), retry})
end
rcall('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = rcall('ZCARD', key)
if count + units <= limit then
  local args, n = {}, 0
  for i = 1, units do
    args[n + 1], args[n + 2] = now, now .. '-' .. (count + i)
    n = n + 2
    if n == 2000 or i == units then
      rcall('ZADD', key, unpack(args, 1, n))
      n = 0
    end
  end
  rcall('PEXPIRE', key, math.max(1, math.ceil(window)))
  local first = rcall('ZRANGE', key, 0, 0, 'WITHSCORES')
  return clamp53({1, limit, math.max(0, limit - (count + units)), math.ceil(tonumber(first[2]) + window), 0})
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
return clamp53({0, limit, math.max(0, limit - count), math.ceil(oldest + window), retry})
