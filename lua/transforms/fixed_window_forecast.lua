--[[ fixed_window_forecast: how many `cost` requests fit now and when the window resets. Read-only.
KEYS[1]  state key (hash s/c, see fixed_window)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  limit      number  units per window
ARGV[3]  window_ms  number  ms
ARGV[4]  cost       number  units per request (> 0)
Reply    {spendable_now, next_replenish_at (= window end), full_at (= window end)}
]]
local rcall = redis.call
--- @include "lib/now"
local now = resolve_now(ARGV[1])
local limit, window, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local window_start = math.floor(now / window) * window
local reset_at = math.ceil(window_start + window)
local st = rcall('HMGET', KEYS[1], 's', 'c')
local count = 0
if st[1] and st[2] and tonumber(st[1]) == window_start then count = tonumber(st[2]) end
return {math.floor(math.max(0, limit - count) / cost), reset_at, reset_at}
