--[[ lease_grant: add a server-granted chunk of a global budget to a local lease (LeaseSpender).
KEYS[1]  state key: hash {c = credits '%.17g', e = grant expiry epoch ms (absent = none)}
ARGV[1]  now_ms         number  epoch ms; -1 = server clock (read only when drop_if_ended is 1)
ARGV[2]  capacity       number  units granted (>= 0)
ARGV[3]  expires_at     number  epoch ms the grant's window ends; -1 = no expiry. Replaces the previous one.
ARGV[4]  drop_if_ended  number  optional; 1 = drop the grant entirely (write nothing) when now >= expires_at
                                (a window-coupled proactive refill that landed after its window);
                                absent or 0 = always apply
Reply    {credits, applied 0|1}  (credits after the grant; unchanged when dropped)
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
local capacity, expires_at = tonumber(ARGV[2]), tonumber(ARGV[3])
local credits = tonumber(rcall('HGET', KEYS[1], 'c') or '0')
if tonumber(ARGV[4]) == 1 and expires_at ~= -1 and resolve_now(ARGV[1]) >= expires_at then
  return {credits, 0}
end
credits = credits + capacity
rcall('HSET', KEYS[1], 'c', fmt17(credits))
if expires_at == -1 then rcall('HDEL', KEYS[1], 'e') else rcall('HSET', KEYS[1], 'e', fmt17(expires_at)) end
return {credits, 1}
