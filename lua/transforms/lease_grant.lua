--[[ lease_grant: add a server-granted chunk of a global budget to a local lease (LeaseSpender).
KEYS[1]  state key: hash {c = credits '%.17g', e = grant expiry epoch ms (absent = none)}
ARGV[1]  now_ms      number  epoch ms (unused; every transform takes it first)
ARGV[2]  capacity    number  units granted (>= 0)
ARGV[3]  expires_at  number  epoch ms the grant's window ends; -1 = no expiry. Replaces the previous one.
Reply    {credits}
]]
local rcall = redis.call
--- @include "lib/fmt17"
local capacity, expires_at = tonumber(ARGV[2]), tonumber(ARGV[3])
local credits = tonumber(rcall('HGET', KEYS[1], 'c') or '0') + capacity
rcall('HSET', KEYS[1], 'c', fmt17(credits))
if expires_at == -1 then rcall('HDEL', KEYS[1], 'e') else rcall('HSET', KEYS[1], 'e', fmt17(expires_at)) end
return {credits}
