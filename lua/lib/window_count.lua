-- window_count(key, start): units counted in the window (or quota period) starting at `start`; a hash
-- {s = start, c = count} of another window reads 0. Fixed window and quota (check, peek, forecast).
local function window_count(key, start)
  local st = redis.call('HMGET', key, 's', 'c')
  if st[1] and st[2] and tonumber(st[1]) == start then return tonumber(st[2]) end
  return 0
end
