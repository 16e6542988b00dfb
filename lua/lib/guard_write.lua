-- guard_write(key, g, recal): persist a guard read by guard_read (the deque as its text); the
-- recalibration fields only with `recal` (a guard without recalibration never has them).
local function guard_write(key, g, recal)
  redis.call('HSET', key, 'e', fmt17(g.e), 'i', fmt17(g.i), 'r', fmt17(g.r), 'l', fmt17(g.l),
    'n', fmt17(g.n), 'd', g.d)
  if recal then
    redis.call('HSET', key, 'b', fmt17(g.b), 'p', fmt17(g.p), 'k', fmt17(g.k), 'u', fmt17(g.u),
      'm', fmt17(g.m))
  end
end
