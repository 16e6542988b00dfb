--[[ conc_acquire: take one in-flight slot of an adaptive concurrency guard (spec 9.1 acquire, 9.3 gate).
KEYS[1]  guard state: hash (see lib/guard_read: e estimate, i in flight, r rttNoload, l last RTT, n, d)
ARGV[1]  now_ms         number  epoch ms; -1 = server clock
ARGV[2]  initial_limit  number  estimate of a guard with no state yet
ARGV[3]  cap            number  the fleet share capping the local limit (distributedConcurrency); -1 = none
ARGV[4]  fence_at       number  epoch ms from which the guard is self-fenced (its coordinator lease is
                                about to lapse); -1 = never
Reply    {slot, allowed, limit, remaining, reset_at, retry_after_ms}
         limit = min(floor(estimate), cap); admitted iff not fenced and in flight < limit.
         Allow: slot = in flight after the increment (inflightAtAcquire), remaining = limit - in flight,
         reset_at = now, retry 0. Deny: slot 0, remaining 0, reset_at = now,
         retry = max(1, round_half_up(last RTT)) (no RTT yet: 1).
Writes   i (and a fresh guard's fields) on allow only; a denial writes nothing.
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/guard_read"
--- @include "lib/guard_write"
local now = resolve_now(ARGV[1])
local cap, fence_at = tonumber(ARGV[3]), tonumber(ARGV[4])
local g = guard_read(KEYS[1], tonumber(ARGV[2]))
local limit = math.floor(g.e)
if cap >= 0 and cap < limit then limit = math.floor(cap) end
if (fence_at >= 0 and now >= fence_at) or g.i >= limit then
  local retry = g.l > 0 and math.floor(g.l + 0.5) or 1
  return {0, 0, limit, 0, now, math.max(1, retry)}
end
g.i = g.i + 1
if g.fresh then guard_write(KEYS[1], g) else rcall('HSET', KEYS[1], 'i', fmt17(g.i)) end
return {g.i, 1, limit, math.max(0, limit - g.i), now, 0}
