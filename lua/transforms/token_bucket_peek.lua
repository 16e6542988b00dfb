--[[ token_bucket_peek: what a cost-1 request would see now, without consuming. Read-only.
KEYS[1]  state key (hash t/l, see token_bucket)
ARGV[1]  now_ms          number  epoch ms; -1 = server clock
ARGV[2]  capacity        number  tokens
ARGV[3]  refill_per_sec  number  tokens per second
Reply    {allowed 0|1, limit (= capacity), remaining, reset_at (epoch ms), retry_after_ms}
]]
--- @include "lib/now"
--- @include "lib/bucket_tokens"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local capacity, refill_per_sec = tonumber(ARGV[2]), tonumber(ARGV[3])
local refill_per_ms = refill_per_sec / 1000
local tokens = bucket_tokens(KEYS[1], now, capacity, refill_per_ms)
local reset_at = now + math.ceil((capacity - tokens) / refill_per_ms)
if tokens >= 1 then
  return clamp53({1, capacity, math.max(0, math.floor(tokens)), reset_at, 0})
end
return clamp53({0, capacity, math.max(0, math.floor(tokens)), reset_at, math.ceil((1 - tokens) / refill_per_ms)})
