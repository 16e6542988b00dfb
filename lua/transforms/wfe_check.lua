--[[ wfe_check: weighted fair escrow, one per-window budget split across tenants by weight, max-min fair.
The tenants active this window (those that asked) share the budget T = budget - evicted: each tenant's
ceiling is its allocation in the integer weighted max-min split of T where every tenant may use without
bound and keeps what it already used (allocations never go below usage). So equal heavy demand splits by
weight, a tenant that never asked (idle) takes no share, a late joiner gets the max-min share of what is
left, and the units the flooring leaves over go one each to the tenants with the smallest allocation per
weight (earliest joined first). Sum of usage <= budget always. With idle_ms > 0 a tenant that has not
asked for more than idle_ms leaves the split (it keeps what it used, its unused share goes to the others)
until it asks again. Window: epoch-aligned on window_ms, rolled when now >= start + window_ms (a backward
clock never rolls it).
Cost. The exact split reads every tenant (O(n log n)); it is computed only when needed. A request within
the tenant's guaranteed part of what is left, floor(weight * (T - U) / W) (U: all usage; W: all weights;
the water level of the split is at least (T - U) / W), is admitted from the stored aggregates alone (O(1)),
reporting that guaranteed part as its limit (a lower bound of the ceiling). An exhausted budget (U = T)
denies in O(1) with the tenant's usage as its ceiling (the split of an exhausted budget), except for a
region slice that may still grow (the pool needs `need`).
KEYS[1]  pool hash: ws window start, ev units used by evicted tenants, rb this window's budget, seq join
         counter, n tenants, W sum of their weights, U sum of their usage; per tenant t: w:<t> weight, u:<t> units used, o:<t> join order, s:<t> last asked (epoch ms);
         expires at the window end
ARGV[1]  now_ms       number  epoch ms; -1 = server clock
ARGV[2]  window_ms    number  window length (>= 1)
ARGV[3]  limit        number  L, whole units per window (the most any budget may reach)
ARGV[4]  max_tenants  number  tenants kept (>= 1); a new tenant beyond it evicts the earliest joined (its usage
                              keeps counting against the budget)
ARGV[5]  idle_ms      number  > 0 = a tenant silent for longer leaves the split; 0 = never
ARGV[6]  tenant       string  the request key
ARGV[7]  weight       number  the tenant's weight (> 0), re-read every check
ARGV[8]  cost         number  units (> 0)
ARGV[9]  budget       number  -1 = L (one instance); else a region's slice: this window's budget is raised to
                              it when larger, never lowered (0 after a roll until a slice is granted)
         (the per-policy constants come first and the per-request values last: a store binds the constants
         once, ``bind(name, params)``, and a call passes only the request's values)
Reply    {need, weight_sum, budget, allowed, limit, remaining, reset_at, retry_after_ms}
         limit = the tenant's ceiling (a lower bound of it on an O(1) admission); need = the budget (<= L)
         at which this request would fit (the current budget when it fits);
         weight_sum = the active tenants' weights as '%.17g' text (a region's weight in the region pool;
         text, because Redis truncates a reply number to an integer)
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
local now = resolve_now(ARGV[1])
local win, L, maxt, idle = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]) or 0
local tenant, weight, cost, given = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local K = KEYS[1]
local g = rcall('HMGET', K, 'ws', 'ev', 'rb', 'seq', 'n', 'W', 'U', 'w:' .. tenant, 'u:' .. tenant, 'o:' .. tenant)
local ws = tonumber(g[1])
if ws ~= nil and now >= ws + win then
  -- a stale window still stored (its expiry follows another clock): clear it
  local flat = rcall('HGETALL', K)
  local fields = {}
  for i = 1, #flat, 2 do fields[#fields + 1] = flat[i] end
  for i = 1, #fields, 1000 do rcall('HDEL', K, unpack(fields, i, math.min(i + 999, #fields))) end
  g = {}
  ws = nil
end
if ws == nil then ws = math.floor(now / win) * win end
local budget = tonumber(g[3]) or 0
if given == -1 then budget = L elseif given > budget then budget = math.min(given, L) end
local ev, seq = tonumber(g[2]) or 0, tonumber(g[4]) or 0
local n, W, U = tonumber(g[5]) or 0, tonumber(g[6]) or 0, tonumber(g[7]) or 0
local known = g[8] ~= nil and g[8] ~= false
local used, order = 0, 0
if known then
  used, order = tonumber(g[9]), tonumber(g[10])
  W = W - tonumber(g[8]) + weight
end
local reset = math.ceil(ws + win)
local T = budget - ev

local function store(new_used, extra)
  local args = {'ws', fmt17(ws), 'ev', fmt17(ev), 'rb', fmt17(budget), 'seq', fmt17(seq), 'n', fmt17(n),
    'W', fmt17(W), 'U', fmt17(U), 'w:' .. tenant, fmt17(weight), 'u:' .. tenant, fmt17(new_used),
    'o:' .. tenant, fmt17(order), 's:' .. tenant, fmt17(now)}
  rcall('HSET', K, unpack(args))
  rcall('PEXPIRE', K, math.max(1, reset - now))
end

local retry = math.max(1, math.ceil(reset - now))
if known or n < maxt then
  if not known then
    seq, n, W, order = seq + 1, n + 1, W + weight, seq + 1
  end
  -- O(1): within the tenant's guaranteed part of what is left
  local sure = -1
  if W > 0 and T > U then sure = math.floor(weight * (T - U) / W) end
  if used + cost <= sure then
    U = U + cost
    store(used + cost)
    return {budget, fmt17(W), budget, 1, sure, math.max(0, math.floor(sure - used - cost)), reset, 0}
  end
  -- O(1): exhausted, and the budget cannot grow
  if U >= T and (given == -1 or budget >= L) then
    store(used)
    return {L, fmt17(W), budget, 0, used, 0, reset, retry}
  end
  if not known then
    -- undo: the exact path below joins the tenant itself
    seq, n, W, order = seq - 1, n - 1, W - weight, 0
  end
end

-- the exact split: every tenant, one pass (records {name, w, u, o, s})
local flat = rcall('HGETALL', K)
local recs, list = {}, {}
local byte, sub = string.byte, string.sub
for i = 1, #flat, 2 do
  local f = flat[i]
  local c = byte(f, 1)
  if byte(f, 2) == 58 and (c == 119 or c == 117 or c == 111 or c == 115) then
    local name = sub(f, 3)
    local r = recs[name]
    if r == nil then
      r = {name = name, w = 0, u = 0, o = 0, s = 0}
      recs[name] = r
      list[#list + 1] = r
    end
    r[sub(f, 1, 1)] = tonumber(flat[i + 1])
  end
end
local me = recs[tenant]
if me == nil then
  if #list >= maxt then
    local oldest = 1
    for i = 2, #list do if list[i].o < list[oldest].o then oldest = i end end
    local r = table.remove(list, oldest)
    recs[r.name] = nil
    ev = ev + r.u
    rcall('HDEL', K, 'w:' .. r.name, 'u:' .. r.name, 'o:' .. r.name, 's:' .. r.name)
  end
  seq = seq + 1
  me = {name = tenant, w = weight, u = 0, o = seq, s = now}
  recs[tenant] = me
  list[#list + 1] = me
end
me.w, me.s = weight, now
order = me.o
-- join order: every sum runs in the same order on every executor (pairs() order is unspecified)
table.sort(list, function(a, b) return a.o < b.o end)
-- the split of T = budget - ev with usage floors; idle tenants are out of it, their usage stays
local Wa, Uall, Ta = 0, 0, budget - ev
W = 0
local byload = {}
for _, r in ipairs(list) do
  Uall = Uall + r.u
  W = W + r.w
  if idle > 0 and r ~= me and now - r.s > idle then
    r.idle = true
    Ta = Ta - r.u
  else
    Wa = Wa + r.w
    byload[#byload + 1] = r
  end
end
n, U = #list, Uall
local ceiling
if ev + Uall >= budget then
  ceiling = me.u -- exhausted: every allocation is its usage
else
  table.sort(byload, function(a, b)
    local ra, rb = a.u / a.w, b.u / b.w
    if ra ~= rb then return ra > rb end
    return a.o < b.o
  end)
  local R, Wr, k = Ta, Wa, 1
  while k <= #byload do
    local r = byload[k]
    if Wr > 0 and r.u * Wr >= r.w * R then
      r.alloc = r.u; R = R - r.u; Wr = Wr - r.w; k = k + 1
    else
      break
    end
  end
  local open, handed = {}, 0
  for j = k, #byload do
    local r = byload[j]
    r.alloc = math.max(0, math.floor(r.w * R / Wr))
    handed = handed + r.alloc
    open[#open + 1] = r
  end
  local left = math.floor(R - handed)
  if left > 0 then
    table.sort(open, function(a, b)
      local ra, rb = a.alloc / a.w, b.alloc / b.w
      if ra ~= rb then return ra < rb end
      return a.o < b.o
    end)
    for j = 1, math.min(left, #open) do open[j].alloc = open[j].alloc + 1 end
  end
  ceiling = me.alloc
end
used = me.u
-- the budget at which this request fits: the water level reaching used + cost for this tenant
local level = (used + cost) / weight
local need = ev
for _, r in ipairs(list) do
  if r.idle then need = need + r.u else need = need + math.max(r.u, r.w * level) end
end
need = math.min(L, math.ceil(need))
if cost <= budget - ev - Uall and used + cost <= ceiling then
  U = U + cost
  store(used + cost)
  return {need, fmt17(Wa), budget, 1, ceiling, math.max(0, math.floor(ceiling - used - cost)), reset, 0}
end
store(used)
return {need, fmt17(Wa), budget, 0, ceiling, math.max(0, math.floor(ceiling - used)), reset, retry}
