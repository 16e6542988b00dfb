--[[ token_bucket_forecast: how many `cost` requests fit now and when tokens return. Read-only.
KEYS[1]  state key (hash t/l, see token_bucket)
ARGV[1]  now_ms          number  epoch ms; -1 = server clock
ARGV[2]  capacity        number  tokens
ARGV[3]  refill_per_sec  number  tokens per second
ARGV[4]  cost            number  tokens per request (> 0)
Reply    {spendable_now, next_replenish_at (epoch ms; now when full), full_at (epoch ms)}
]]
--- @include "lib/now"
--- @include "lib/bucket_tokens"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local capacity, refill_per_sec, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local refill_per_ms = refill_per_sec / 1000
local tokens = bucket_tokens(KEYS[1], now, capacity, refill_per_ms)
local next_at = now
if tokens < capacity then
  next_at = now + math.ceil((math.floor(tokens) + 1 - tokens) / refill_per_ms)
end
return clamp53({math.floor(tokens / cost), next_at, now + math.ceil((capacity - tokens) / refill_per_ms)})
