--[[ token_bucket: consume `cost` tokens from a continuously refilled bucket (starts full).
KEYS[1]  state key: hash {t = tokens '%.17g', l = last refill epoch ms '%.17g'}
ARGV[1]  now_ms          number  epoch ms; -1 = server clock
ARGV[2]  capacity        number  tokens
ARGV[3]  refill_per_sec  number  tokens per second
ARGV[4]  cost            number  tokens (> 0)
Reply    {allowed 0|1, limit (= capacity), remaining, reset_at (epoch ms), retry_after_ms}
Writes   HSET t l + PEXPIRE max(1, ceil(capacity / refill_per_ms)) on allow only.
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/bucket_tokens"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local capacity, refill_per_sec, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local refill_per_ms = refill_per_sec / 1000
local tokens = bucket_tokens(KEYS[1], now, capacity, refill_per_ms)
if tokens >= cost then
  local nt = tokens - cost
  rcall('HSET', KEYS[1], 't', fmt17(nt), 'l', fmt17(now))
  rcall('PEXPIRE', KEYS[1], math.max(1, math.ceil(capacity / refill_per_ms)))
  return clamp53({1, capacity, math.max(0, math.floor(nt)), now + math.ceil((capacity - nt) / refill_per_ms), 0})
end
return clamp53({0, capacity, math.max(0, math.floor(tokens)),
  now + math.ceil((capacity - tokens) / refill_per_ms), math.ceil((cost - tokens) / refill_per_ms)})
