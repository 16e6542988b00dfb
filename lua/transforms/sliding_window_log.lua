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
-- the oldest live entry, read before anything is written: a key whose TTL is about to pass may expire
-- while the script runs (Redis checks expiry on its clock), so nothing below reads the log back
local oldest = now
if count > 0 then
  local head = rcall('ZRANGE', key, 0, 0, 'WITHSCORES')
  if head[2] then oldest = tonumber(head[2]) end
end
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
  -- the lowest score once `now` is added (the log's first entry by rank, as ZRANGE 0 0 would read it)
  return clamp53({1, limit, math.max(0, limit - (count + units)), math.ceil(math.min(oldest, now) + window), 0})
end
local retry = window
if count > 0 then
  local k = count + units - limit
  if k < 1 then k = 1 elseif k > count then k = count end
  local ref = rcall('ZRANGE', key, k - 1, k - 1, 'WITHSCORES')
  if ref[2] then retry = math.max(1, math.ceil(tonumber(ref[2]) + window - now)) end
end
return clamp53({0, limit, math.max(0, limit - count), math.ceil(oldest + window), retry})
