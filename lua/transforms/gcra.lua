--[[ gcra: consume `cost` from a GCRA limiter (smooth pacing at limit/period with a burst allowance).
KEYS[1]  state key: string holding the theoretical arrival time (TAT, epoch ms, '%.17g')
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  period_ms  number  ms in which `limit` units are emitted
ARGV[3]  limit      number  units per period
ARGV[4]  burst      number  units admissible at one instant (>= 1)
ARGV[5]  cost       number  units this request consumes (> 0)
Reply    {allowed 0|1, limit (= burst), remaining, reset_at (epoch ms), retry_after_ms}, each clamped to
         +-(2^53-1) (lib/clamp53)
Writes   SET key TAT PX max(1, ceil(TAT - now)) on allow only; a denial never writes.
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/gcra_tat"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local period, limit, burst, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local T = period / limit
local tau = T * burst
local tat_eff = gcra_tat(KEYS[1], now)
local new_tat = tat_eff + T * cost
local allow_at = new_tat - tau
if now < allow_at then
  local remaining = math.max(0, math.floor((tau - (tat_eff - now)) / T))
  return clamp53({0, burst, remaining, math.ceil(tat_eff), math.ceil(allow_at - now)})
end
local remaining = math.max(0, math.floor((tau - (new_tat - now)) / T))
rcall('SET', KEYS[1], fmt17(new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
return clamp53({1, burst, remaining, math.ceil(new_tat), 0})
