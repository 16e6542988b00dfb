--[[ conc_heartbeat: one node's report to the distributed concurrency coordinator (spec 9.4
applyHeartbeat: equal-split allocation, no acknowledged handoff), with node-id collision detection.
KEYS[1]  nodes: hash node id -> "lLocal inflight expiresAt share" (space-joined integers; the upstream
         RedisConcurrencyCoordinator layout; extra trailing integers are ignored and not kept)
KEYS[2]  owners: hash node id -> the instance token of the process that holds that id
ARGV[1]  now_ms     number  epoch ms; -1 = server clock (the coordinator's clock: no skew in a fleet)
ARGV[2]  node_id    string  this node's id (non-empty)
ARGV[3]  token      string  this process's instance token (unique per process start)
ARGV[4]  l_local    number  this node's local limit (integer >= 0)
ARGV[5]  inflight   number  this node's slots in flight (integer >= 0)
ARGV[6]  ttl_ms     number  this report is live until now + ttl_ms
ARGV[7]  aggregate  number  0 = lower median of the live nodes' lLocal, 1 = minimum
Reply    {share, l_global, nodes, collision, expires_at}
Steps    collision: another live process (a different token, an entry with expiresAt >= now) holds
         node_id => reply {0, 0, 0, 1, 0} and write nothing. Else: upsert self (keeping its share),
         evict every other node with expiresAt < now, lGlobal = aggregate of lLocal, ids sorted
         ascending (byte order), base = floor(lGlobal/n), rem = lGlobal - base*n,
         target = base + (rank < rem), others = sum over j ~= self of max(share_j, inflight_j),
         share = max(0, min(target, lGlobal - others)); store it. PEXPIRE both keys
         max(1, max live expiresAt - now).
]]
local rcall = redis.call
--- @include "lib/now"
local now = resolve_now(ARGV[1])
local me, token = ARGV[2], ARGV[3]
local l_local, inflight, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local use_min = tonumber(ARGV[7]) == 1
local nodes_key, owners_key = KEYS[1], KEYS[2]
local raw = rcall('HGETALL', nodes_key)
local nodes, ids = {}, {}
for k = 1, #raw, 2 do
  local f = {}
  for w in string.gmatch(raw[k + 1], '%S+') do f[#f + 1] = tonumber(w) or 0 end
  nodes[raw[k]] = {l = f[1] or 0, i = f[2] or 0, x = f[3] or 0, s = f[4] or 0}
end
local owner = rcall('HGET', owners_key, me)
local prior = nodes[me]
if owner and owner ~= token and prior and prior.x >= now then
  return {0, 0, 0, 1, 0}
end
local expires = now + ttl
nodes[me] = {l = l_local, i = inflight, x = expires, s = prior and prior.s or 0}
local evicted = {}
for id, n in pairs(nodes) do
  if id ~= me and n.x < now then evicted[#evicted + 1] = id end
end
for _, id in ipairs(evicted) do nodes[id] = nil end
if #evicted > 0 then
  rcall('HDEL', nodes_key, unpack(evicted))
  rcall('HDEL', owners_key, unpack(evicted))
end
local limits, max_x = {}, expires
for id, n in pairs(nodes) do
  ids[#ids + 1] = id
  limits[#limits + 1] = n.l
  if n.x > max_x then max_x = n.x end
end
table.sort(ids)
table.sort(limits)
local count = #ids
local l_global = use_min and limits[1] or limits[math.floor((count - 1) / 2) + 1]
local rank = 0
for k = 1, count do if ids[k] == me then rank = k - 1 end end
local base = math.floor(l_global / count)
local rem = l_global - base * count
local target = base + ((rank < rem) and 1 or 0)
local others = 0
for id, n in pairs(nodes) do
  if id ~= me then others = others + math.max(n.s, n.i) end
end
local share = math.max(0, math.min(target, l_global - others))
nodes[me].s = share
rcall('HSET', nodes_key, me, string.format('%d %d %d %d', l_local, inflight, math.floor(expires), share))
rcall('HSET', owners_key, me, token)
local ttl_left = math.max(1, math.ceil(max_x - now))
rcall('PEXPIRE', nodes_key, ttl_left)
rcall('PEXPIRE', owners_key, ttl_left)
return {share, l_global, count, 0, expires}
