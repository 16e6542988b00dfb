-- ring_estimate(key, now, window_ms, buckets): the sliding-window estimate over the slot ring.
-- The ring is a hash: field (tick mod (buckets+1)) holds "<tick>:<count>". A slot whose tick is not
-- the queried one belongs to an older lap and reads 0. Returns c (current tick), w (bucket width),
-- weight of the oldest bucket, full (sum of the newest `buckets` ticks, added in ascending tick order
-- as upstream does, which matters for fractional counts), oldest (count of tick c - buckets), and the
-- stored count of tick c.
local function ring_estimate(key, now, window_ms, buckets)
  local w = window_ms / buckets
  local c = math.floor(now / w)
  local elapsed = now - c * w
  if elapsed < 0 then elapsed = 0 end
  local weight = (w - elapsed) / w
  if weight < 0 then weight = 0 elseif weight > 1 then weight = 1 end
  local flat = redis.call('HGETALL', key)
  local ticks, counts, n = {}, {}, 0
  local oldest, current = 0, 0
  for i = 2, #flat, 2 do
    local v = flat[i]
    local sep = string.find(v, ':', 1, true)
    local tick = tonumber(string.sub(v, 1, sep - 1))
    local cnt = tonumber(string.sub(v, sep + 1))
    if tick == c - buckets and tick >= 0 then
      oldest = cnt
    elseif tick > c - buckets and tick <= c and tick >= 0 then
      n = n + 1
      ticks[n] = tick
      counts[tick] = cnt
      if tick == c then current = cnt end
    end
  end
  table.sort(ticks)
  local full = 0
  for i = 1, n do full = full + counts[ticks[i]] end
  return c, w, weight, full, oldest, current
end
