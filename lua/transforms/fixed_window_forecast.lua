--[[ fixed_window_forecast: how many `cost` requests fit now and when the window resets. Read-only.
KEYS[1]  state key (hash s/c, see fixed_window)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  limit      number  units per window
ARGV[3]  window_ms  number  ms
ARGV[4]  cost       number  units per request (> 0)
Reply    {spendable_now, next_replenish_at (= window end), full_at (= window end)}
]]
--- @include "lib/now"
--- @include "lib/window_count"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local limit, window, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local window_start = math.floor(now / window) * window
local reset_at = math.ceil(window_start + window)
local count = window_count(KEYS[1], window_start)
return clamp53({math.floor(math.max(0, limit - count) / cost), reset_at, reset_at})
