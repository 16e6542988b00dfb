-- guard_write(key, g): persist a guard read by guard_read (every field; the deque as its text).
local function guard_write(key, g)
  redis.call('HSET', key, 'e', fmt17(g.e), 'i', fmt17(g.i), 'r', fmt17(g.r), 'l', fmt17(g.l),
    'n', fmt17(g.n), 'd', g.d)
end
