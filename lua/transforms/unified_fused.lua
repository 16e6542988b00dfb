--[[ unified_fused: the rate (gcra) and cost (tokenBucket) axes of a unified admission in one script
(spec 10.4, the Lua-fused backend). The rate axis always costs 1 unit; the cost axis costs `cost_tokens`.
Each axis writes its own state iff that axis allowed, independently of the other (so a rate denial may
still debit the cost bucket; the sequential path never consults cost after a rate denial).
KEYS[1]  rate state: string TAT (as gcra)
KEYS[2]  cost state: hash {t, l} (as token_bucket); must differ from KEYS[1]
ARGV[1]  now_ms          number  epoch ms; -1 = server clock
ARGV[2]  period_ms       number  gcra period
ARGV[3]  limit           number  gcra units per period
ARGV[4]  burst           number  gcra burst (>= 1)
ARGV[5]  cost_tokens     number  tokens the cost axis consumes (> 0)
ARGV[6]  capacity        number  token bucket capacity
ARGV[7]  refill_per_sec  number  token bucket refill
Reply    {all_allowed, limit, remaining, reset_at, retry_after_ms (the two axes combined: allowed iff
         both, min limit and remaining, max reset and retry), rate_allowed, rate_remaining,
         rate_reset_at, rate_retry_after_ms, cost_allowed, cost_remaining, cost_reset_at,
         cost_retry_after_ms}; each clamped to +-(2^53-1)
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/gcra_tat"
--- @include "lib/bucket_tokens"
--- @include "lib/clamp53"
local now = resolve_now(ARGV[1])
local period, limit, burst = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cost, capacity, refill_per_sec = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
-- rate axis: gcra at cost 1
local T = period / limit
local tau = T * burst
local tat_eff = gcra_tat(KEYS[1], now)
local new_tat = tat_eff + T
local r
if now < new_tat - tau then
  r = {0, burst, math.max(0, math.floor((tau - (tat_eff - now)) / T)), math.ceil(tat_eff),
       math.ceil(new_tat - tau - now)}
else
  rcall('SET', KEYS[1], fmt17(new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
  r = {1, burst, math.max(0, math.floor((tau - (new_tat - now)) / T)), math.ceil(new_tat), 0}
end
-- cost axis: token bucket at cost_tokens
local refill_per_ms = refill_per_sec / 1000
local tokens = bucket_tokens(KEYS[2], now, capacity, refill_per_ms)
local c
if tokens >= cost then
  local nt = tokens - cost
  rcall('HSET', KEYS[2], 't', fmt17(nt), 'l', fmt17(now))
  rcall('PEXPIRE', KEYS[2], math.max(1, math.ceil(capacity / refill_per_ms)))
  c = {1, capacity, math.max(0, math.floor(nt)), now + math.ceil((capacity - nt) / refill_per_ms), 0}
else
  c = {0, capacity, math.max(0, math.floor(tokens)), now + math.ceil((capacity - tokens) / refill_per_ms),
       math.ceil((cost - tokens) / refill_per_ms)}
end
local both = (r[1] == 1 and c[1] == 1) and 1 or 0
return clamp53({both, math.min(r[2], c[2]), math.min(r[3], c[3]), math.max(r[4], c[4]), math.max(r[5], c[5]),
  r[1], r[3], r[4], r[5], c[1], c[3], c[4], c[5]})
