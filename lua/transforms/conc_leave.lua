--[[ conc_leave: a node leaves the distributed concurrency coordinator (shutdown): its share is free for
its peers at once.
KEYS[1]  nodes: hash node id -> "lLocal inflight expiresAt share" (see conc_heartbeat)
KEYS[2]  owners: hash node id -> instance token
ARGV[1]  now_ms   number  epoch ms; -1 = server clock (unused; the argument convention)
ARGV[2]  node_id  string
ARGV[3]  token    string  this process's instance token: an id held by another process is left alone
Reply    {removed 0|1}
]]
local rcall = redis.call
local me, token = ARGV[2], ARGV[3]
local owner = rcall('HGET', KEYS[2], me)
if owner and owner ~= token then return {0} end
rcall('HDEL', KEYS[2], me)
return {rcall('HDEL', KEYS[1], me)}
