--[[ token_budget_remaining: tokens left in the current window of a budget meter. Read-only.
KEYS[1]  state key (hash w/s, see token_budget_debit)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  window_ms  number  ms
ARGV[3]  budget     number  whole tokens per window
Reply    {remaining, limit (= budget), reset_at (window end, epoch ms)}
]]
--- @include "lib/now"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local window, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
local st = redis.call('HMGET', KEYS[1], 'w', 's')
local served, ws = 0, math.floor(now / window) * window
if st[1] and now < tonumber(st[1]) + window then
  ws = tonumber(st[1])
  served = tonumber(st[2] or '0')
end
return clamp53({math.max(0, budget - served), budget, math.ceil(ws + window)})
