--[[ token_budget_debit: debit `tokens` from a per-window cost budget (the LLM token meter).
A debit is admitted iff budget remained before it; the crossing debit counts in full (overshoot is at
most tokens - 1); later debits in the window are refused with a retry to the window end.
KEYS[1]  state key: hash {w = window start epoch ms, s = tokens served in that window}
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  window_ms  number  ms
ARGV[3]  budget     number  whole tokens per window (L = floor(budget) >= 1)
ARGV[4]  tokens     number  whole tokens to debit (>= 1)
Reply    {allowed 0|1, limit (= L), remaining, reset_at (window end, epoch ms), retry_after_ms}
Writes   HSET w s + PEXPIRE max(1, ceil(w + window_ms - now)) on allow only. A backward clock jump
         never rolls the window.
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local window, budget, tokens = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local st = rcall('HMGET', KEYS[1], 'w', 's')
local served, ws = 0, math.floor(now / window) * window
if st[1] and now < tonumber(st[1]) + window then
  ws = tonumber(st[1])
  served = tonumber(st[2] or '0')
end
local reset_at = math.ceil(ws + window)
if served >= budget then
  return clamp53({0, budget, 0, reset_at, math.max(0, math.ceil(reset_at - now))})
end
local ns = served + tokens
rcall('HSET', KEYS[1], 'w', fmt17(ws), 's', fmt17(ns))
rcall('PEXPIRE', KEYS[1], math.max(1, math.ceil(ws + window - now)))
return clamp53({1, budget, math.max(0, budget - ns), reset_at, 0})
