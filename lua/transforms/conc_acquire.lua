--[[ conc_acquire: take one in-flight slot of an adaptive concurrency guard (spec 9.1 acquire, 9.2 probe
cap, 9.3 gate).
KEYS[1]  guard state: hash (see lib/guard_read: e estimate, i in flight, r rttNoload, l last RTT, n, d,
         and the recalibration fields b, p, k, u, m)
ARGV[1]  now_ms         number  epoch ms; -1 = server clock
ARGV[2]  initial_limit  number  estimate of a guard with no state yet
ARGV[3]  probe_limit    number  recalibration: the most in flight while a probe runs (0 = no recalibration)
ARGV[4]  cap            number  the fleet share capping the local limit (distributedConcurrency); -1 = none
ARGV[5]  fence_at       number  epoch ms from which the guard is self-fenced (its coordinator lease is
                                about to lapse); -1 = never
Reply    {slot, allowed, limit, remaining, reset_at, retry_after_ms, ticket}
         limit = min(floor(estimate), cap, probe_limit while a probe runs); admitted iff not fenced and
         in flight < limit.
         Allow: slot = in flight after the increment (inflightAtAcquire), remaining = limit - in flight,
         reset_at = now, retry 0, ticket = "<now> <slot> <probe id>" (what conc_release needs to settle
         this slot: its start, its inflightAtAcquire, the probe it was admitted under, 0 = none).
         Deny: slot 0, remaining 0, reset_at = now, retry = max(1, round_half_up(last RTT)) (no RTT
         yet: 1), ticket "".
Writes   i (and a fresh guard's fields) on allow only; a denial writes nothing.
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/guard_read"
--- @include "lib/guard_write"
local now = resolve_now(ARGV[1])
local probe_limit, cap, fence_at = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local recal = probe_limit > 0
-- the hot path reads only what the gate needs (estimate, in flight, last RTT, the probe); a fresh guard
-- is written whole on its first admit
local h = rcall('HMGET', KEYS[1], 'e', 'i', 'l', 'p')
local g
if h[1] then
  g = {e = tonumber(h[1]), i = tonumber(h[2] or '') or 0, l = tonumber(h[3] or '') or 0,
    p = tonumber(h[4] or '') or 0}
else
  g = guard_read(KEYS[1], tonumber(ARGV[2]), recal)
end
local limit = math.floor(g.e)
if cap >= 0 and cap < limit then limit = math.floor(cap) end
if g.p > 0 and probe_limit > 0 and probe_limit < limit then limit = probe_limit end
if (fence_at >= 0 and now >= fence_at) or g.i >= limit then
  local retry = g.l > 0 and math.floor(g.l + 0.5) or 1
  return {0, 0, limit, 0, now, math.max(1, retry), ''}
end
g.i = g.i + 1
if g.fresh then guard_write(KEYS[1], g, recal) else rcall('HSET', KEYS[1], 'i', g.i) end
-- integers below 1e14 print exactly by concatenation (Lua's %.14g); anything else goes through fmt17
local stamp = (now == math.floor(now) and now < 1e14 and now > -1e14) and now or fmt17(now)
return {g.i, 1, limit, math.max(0, limit - g.i), now, 0, stamp .. ' ' .. g.i .. ' ' .. g.p}
