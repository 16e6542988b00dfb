--[[ fed_reconcile: give units leased for a window back to the coordinator, once per window and reconciler.
Only the window still running takes units back: a leftover of a window that has ended is forfeited (its
grants expired with it; crediting it to a later window would let that window grant more than its budget).
The credit is capped so the budget never exceeds the per-key budget. Idempotent: a second reconcile of the
same window by the same reconciler (a retried call) changes nothing.
KEYS[1]  coordinator hash (see fed_lease)
ARGV[1]  now_ms        number  epoch ms; -1 = server clock
ARGV[2]  window_ms     number  window length (>= 1)
ARGV[3]  anchor        number  epoch ms a window starts at (0 = epoch-aligned)
ARGV[4]  budget        number  units per window for this key
ARGV[5]  leftover      number  units given back (>= 0; 0 is a no-op)
ARGV[6]  window_start  number  start of the window the units were leased for
ARGV[7]  reconciler    string  who gives them back (a region or an instance id); the idempotency key
Reply    {credited, budget_left, applied 0|1}
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
local now = resolve_now(ARGV[1])
local w, anchor, per = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local leftover, ws = tonumber(ARGV[5]), tonumber(ARGV[6])
local start = anchor + math.floor((now - anchor) / w) * w
local exp = start + w
local st = rcall('HMGET', KEYS[1], 'budget', 'expiresAt')
local budget, stored = tonumber(st[1]), tonumber(st[2])
if budget == nil or stored ~= exp then budget = per end
if leftover <= 0 or ws ~= start or (stored ~= nil and stored > exp) then
  return {0, budget, 0}
end
local marker = 'rec_' .. fmt17(ws) .. ':' .. ARGV[7]
if rcall('HGET', KEYS[1], marker) then
  return {0, budget, 0}
end
local credited = math.max(0, math.min(leftover, per - budget))
budget = budget + credited
rcall('HSET', KEYS[1], 'budget', fmt17(budget), 'expiresAt', fmt17(exp), marker, fmt17(credited))
rcall('PEXPIRE', KEYS[1], math.max(1, exp - now))
return {credited, budget, 1}
