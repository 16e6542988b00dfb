--[[ leaky_bucket_reserve: schedule `cost` units on a steady-rate shaper; reject only when the wait
would exceed max_queue_ms.
KEYS[1]  state key: string holding the next departure time (epoch ms, '%.17g')
ARGV[1]  now_ms        number  epoch ms; -1 = server clock
ARGV[2]  rate_per_sec  number  units per second
ARGV[3]  max_queue_ms  number  longest acceptable wait, ms (>= 0)
ARGV[4]  cost          number  units (> 0)
Reply    {accepted 0|1, delay_ms (wait before proceeding when accepted; excess over max_queue_ms when not)}
Writes   SET key departure PX max(1, ceil(departure - now)) when accepted only.
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local rate, max_queue, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local T = 1000 / rate
local raw = rcall('GET', KEYS[1])
local departure = now
if raw and tonumber(raw) > now then departure = tonumber(raw) end
local delay = departure - now
if delay > max_queue then
  return clamp53({0, math.ceil(delay - max_queue)})
end
local nd = departure + T * cost
rcall('SET', KEYS[1], fmt17(nd), 'PX', math.max(1, math.ceil(nd - now)))
return clamp53({1, math.ceil(delay)})
