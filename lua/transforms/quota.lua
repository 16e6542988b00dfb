--[[ quota: consume `cost` from a billing-period budget (calendar month/week/day or fixed period).
KEYS[1]  state key: hash {s = period start epoch ms, c = count}
ARGV[1]  now_ms          number  epoch ms; -1 = server clock
ARGV[2]  limit           number  units per period
ARGV[3]  mode            number  1 calendar-month, 2 calendar-week, 3 calendar-day, 4 fixed
ARGV[4]  period_ms       number  ms (fixed only; 0 otherwise)
ARGV[5]  anchor          number  epoch ms where fixed periods start (fixed only)
ARGV[6]  offset_ms       number  fixed UTC offset of the calendar, ms (calendar modes)
ARGV[7]  week_starts_on  number  0 = Sunday .. 6 = Saturday (calendar-week)
ARGV[8]  cost            number  units (> 0)
Reply    {allowed 0|1, limit, remaining, reset_at (period end, epoch ms), retry_after_ms}
Writes   HSET s c + PEXPIRE max(1, ceil(reset_at - now)) on allow only.
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/quota_period"
--- @include "lib/window_count"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local limit, cost = tonumber(ARGV[2]), tonumber(ARGV[8])
local start, reset = quota_period(now, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), tonumber(ARGV[7]))
local count = window_count(KEYS[1], start)
if count + cost <= limit then
  local nc = count + cost
  rcall('HSET', KEYS[1], 's', fmt17(start), 'c', fmt17(nc))
  rcall('PEXPIRE', KEYS[1], math.max(1, math.ceil(reset - now)))
  return clamp53({1, limit, math.max(0, math.floor(limit - nc)), math.ceil(reset), 0})
end
return clamp53({0, limit, math.max(0, math.floor(limit - count)), math.ceil(reset), math.ceil(reset - now)})
