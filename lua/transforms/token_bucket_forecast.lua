--[[ token_bucket_forecast: how many `cost` requests fit now and when tokens return. Read-only.
KEYS[1]  state key (hash t/l, see token_bucket)
ARGV[1]  now_ms          number  epoch ms; -1 = server clock
ARGV[2]  capacity        number  tokens
ARGV[3]  refill_per_sec  number  tokens per second
ARGV[4]  cost            number  tokens per request (> 0)
Reply    {spendable_now, next_replenish_at (epoch ms; now when full), full_at (epoch ms)}
]]
local rcall = redis.call
--- @include "lib/now"
local now = resolve_now(ARGV[1])
local capacity, refill_per_sec, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local refill_per_ms = refill_per_sec / 1000
local st = rcall('HMGET', KEYS[1], 't', 'l')
local tokens = capacity
if st[1] and st[2] then
  local last = tonumber(st[2])
  local elapsed = 0
  if now > last then elapsed = now - last end
  tokens = math.min(capacity, tonumber(st[1]) + elapsed * refill_per_ms)
end
local next_at = now
if tokens < capacity then
  next_at = now + math.ceil((math.floor(tokens) + 1 - tokens) / refill_per_ms)
end
return {math.floor(tokens / cost), next_at, now + math.ceil((capacity - tokens) / refill_per_ms)}
