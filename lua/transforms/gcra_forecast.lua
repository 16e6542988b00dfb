--[[ gcra_forecast: how many `cost` requests fit now and when capacity returns. Read-only.
KEYS[1]  state key (string TAT, see gcra)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  period_ms  number  ms
ARGV[3]  limit      number  units per period
ARGV[4]  burst      number  units
ARGV[5]  cost       number  units per request (> 0)
Reply    {spendable_now, next_replenish_at (epoch ms), full_at (epoch ms)}
]]
--- @include "lib/now"
--- @include "lib/gcra_tat"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local period, limit, burst, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local T = period / limit
local tau = T * burst
local tat_eff = gcra_tat(KEYS[1], now)
local units = math.max(0, math.floor((tau - (tat_eff - now)) / T))
return clamp53({math.floor(units / cost), math.max(now, math.ceil(tat_eff + T - tau)),
  math.max(now, math.ceil(tat_eff))})
