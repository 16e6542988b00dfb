--[[ conc_heartbeat: one node's report to the distributed concurrency coordinator (spec 9.4
applyHeartbeat: equal-split or demand-proportional allocation, optional acknowledged handoff), with node-id collision detection.
KEYS[1]  nodes: hash node id -> "lLocal inflight expiresAt share" (space-joined integers; the upstream
         RedisConcurrencyCoordinator layout), + " committedGen maxSeq unackedHigh" under handoff
KEYS[2]  owners: hash node id -> the instance token of the process that holds that id
ARGV[1]  now_ms       number  epoch ms; -1 = server clock (the coordinator's clock: no skew in a fleet)
ARGV[2]  node_id      string  this node's id (non-empty)
ARGV[3]  token        string  this process's instance token (unique per process start)
ARGV[4]  l_local      number  this node's local limit (integer >= 0)
ARGV[5]  inflight     number  this node's slots in flight (integer >= 0)
ARGV[6]  ttl_ms       number  this report is live until now + ttl_ms
ARGV[7]  aggregate    number  0 = lower median of the live nodes' lLocal, 1 = minimum
ARGV[8]  seq          number  the report's sequence number (increasing per node process); -1 = absent
ARGV[9]  applied_gen  number  the last grant generation the node applied; -1 = absent
ARGV[10] handoff      number  1 = acknowledged handoff, 0 = none
ARGV[11] allocation   string  "equal-split" | "demand-proportional" (anything else is an error)
Reply    {share, l_global, nodes, collision, expires_at, gen}   (gen = committedGen; -1 without handoff)
Steps    collision: another live process (a different token, an entry with expiresAt >= now) holds
         node_id => reply {0, 0, 0, 1, 0, -1} and write nothing. Else upsert self carrying its prior
         share, committedGen, maxSeq, unackedHigh (0 if new). Under handoff the report is fresh iff
         seq = -1 or seq > maxSeq; a stale report keeps the prior inflight; maxSeq = max(prior, seq)
         (0 without handoff). Evict every other node with expiresAt < now, lGlobal = aggregate of lLocal,
         ids sorted ascending (byte order). A stale report stops here: it is recorded (lease renewed) and
         answered with the committed share and gen, unchanged. Else the target:
         equal-split: base = floor(lGlobal/n), rem = lGlobal - base*n, target = base + (rank < rem);
         demand-proportional: a node is satisfied iff inflight < share (its stored share; self: the
         prior share, with this report's inflight); a satisfied self gets target inflight + 1; else
         spare = max(0, lGlobal - sum over satisfied nodes of (inflight + 1)) is split among the H
         hungry nodes (ids ascending, self's hungryRank among them): q = floor(spare/H),
         target = max(1, q + (hungryRank < spare - q*H)). Then others = sum over j ~= self of
         max(held_j, inflight_j) where held_j = share_j (handoff: unackedHigh_j),
         share = max(0, min(target, lGlobal - others)). Under handoff: committedGen + 1 when the share
         changed; unackedHigh = max(prior unackedHigh, share), reset to share when applied_gen >=
         committedGen. A value written without handoff (4 integers) read under handoff takes
         committedGen = maxSeq = 0 and unackedHigh = its share (the spec reads 0; its share is what that
         node may hold, so counting it keeps the sum within lGlobal in a mixed fleet).
         PEXPIRE both keys max(1, max live expiresAt - now).
]]
local rcall = redis.call
--- @include "lib/now"
local now = resolve_now(ARGV[1])
local me, token = ARGV[2], ARGV[3]
local l_local, inflight, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local use_min = tonumber(ARGV[7]) == 1
local seq, applied_gen, handoff = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]) == 1
local allocation = ARGV[11]
if allocation ~= 'equal-split' and allocation ~= 'demand-proportional' then
  error('conc_heartbeat: allocation must be "equal-split" or "demand-proportional", got ' ..
    (allocation == nil and 'nothing' or ('"' .. tostring(allocation) .. '"')), 0)
end
local nodes_key, owners_key = KEYS[1], KEYS[2]
local raw = rcall('HGETALL', nodes_key)
local nodes, ids = {}, {}
for k = 1, #raw, 2 do
  local f = {}
  for w in string.gmatch(raw[k + 1], '%S+') do f[#f + 1] = tonumber(w) or 0 end
  local s = f[4] or 0
  nodes[raw[k]] = {l = f[1] or 0, i = f[2] or 0, x = f[3] or 0, s = s, g = f[5] or 0, q = f[6] or 0,
    h = f[7] or s}
end
local owner = rcall('HGET', owners_key, me)
local prior = nodes[me]
if owner and owner ~= token and prior and prior.x >= now then
  return {0, 0, 0, 1, 0, -1}
end
local expires = now + ttl
local p = prior or {l = 0, i = 0, x = 0, s = 0, g = 0, q = 0, h = 0}
local fresh = (not handoff) or seq < 0 or seq > p.q
local me_n = {l = l_local, i = fresh and inflight or p.i, x = expires, s = p.s, g = p.g,
  q = handoff and math.max(p.q, seq) or 0, h = p.h}
nodes[me] = me_n
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
if fresh then
  local target
  if allocation == 'equal-split' then
    local rank = 0
    for k = 1, count do if ids[k] == me then rank = k - 1 end end
    local base = math.floor(l_global / count)
    local rem = l_global - base * count
    target = base + ((rank < rem) and 1 or 0)
  elseif me_n.i < me_n.s then
    target = me_n.i + 1
  else
    local demand, hungry, hungry_rank = 0, 0, 0
    for k = 1, count do
      local n = nodes[ids[k]]
      if n.i < n.s then
        demand = demand + n.i + 1
      else
        if ids[k] == me then hungry_rank = hungry end
        hungry = hungry + 1
      end
    end
    local spare = math.max(0, l_global - demand)
    local q = math.floor(spare / hungry)
    target = math.max(1, q + ((hungry_rank < spare - q * hungry) and 1 or 0))
  end
  local others = 0
  for id, n in pairs(nodes) do
    if id ~= me then others = others + math.max(handoff and n.h or n.s, n.i) end
  end
  local share = math.max(0, math.min(target, l_global - others))
  if handoff then
    if share ~= p.s then me_n.g = p.g + 1 end
    me_n.h = math.max(p.h, share)
    if applied_gen >= me_n.g then me_n.h = share end
  end
  me_n.s = share
end
local value = string.format('%d %d %d %d', me_n.l, me_n.i, math.floor(expires), me_n.s)
if handoff then value = value .. string.format(' %d %d %d', me_n.g, me_n.q, me_n.h) end
rcall('HSET', nodes_key, me, value)
rcall('HSET', owners_key, me, token)
local ttl_left = math.max(1, math.ceil(max_x - now))
rcall('PEXPIRE', nodes_key, ttl_left)
rcall('PEXPIRE', owners_key, ttl_left)
return {me_n.s, l_global, count, 0, expires, handoff and me_n.g or -1}
