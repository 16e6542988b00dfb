-- bucket_tokens(key, now, capacity, refill_per_ms): tokens in a token bucket at now, refilled lazily.
-- Missing `t` reads as capacity and missing `l` as now, each independently (the upstream check's rule):
-- check, peek and forecast share this one read, so a peek predicts exactly what a check would see.
local function bucket_tokens(key, now, capacity, refill_per_ms)
  local st = redis.call('HMGET', key, 't', 'l')
  local prev, last = capacity, now
  if st[1] then prev = tonumber(st[1]) end
  if st[2] then last = tonumber(st[2]) end
  local elapsed = 0
  if now > last then elapsed = now - last end
  return math.min(capacity, prev + elapsed * refill_per_ms)
end
