--[[ gcra_peek: what a cost-1 GCRA request would see now, without consuming. Read-only.
KEYS[1]  state key (string TAT, see gcra)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  period_ms  number  ms
ARGV[3]  limit      number  units per period
ARGV[4]  burst      number  units
Reply    {allowed 0|1, limit (= burst), remaining, reset_at (epoch ms), retry_after_ms}
]]
--- @include "lib/now"
--- @include "lib/gcra_tat"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local period, limit, burst = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local T = period / limit
local tau = T * burst
local tat_eff = gcra_tat(KEYS[1], now)
local remaining = math.max(0, math.floor((tau - (tat_eff - now)) / T))
if remaining >= 1 then
  return clamp53({1, burst, remaining, math.ceil(tat_eff), 0})
end
return clamp53({0, burst, remaining, math.ceil(tat_eff), math.ceil(tat_eff + T - tau - now)})
