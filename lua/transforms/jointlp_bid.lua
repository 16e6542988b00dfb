--[[ jointlp_bid: the joint-LP bid-price filter of an admit (spec 10.3 step 2) and its adaptive duals
(spec 10.5 jointLp.adaptive). bid = p_rate + p_cost*cost (+ p_conc*hold iff a conc dual is given and
hold is finite and > 0); the admit is policy-denied iff value < bid.
KEYS[1]  learner  hash (adaptive only; a static filter reads and writes nothing):
                  g fingerprint of the config it learned for (another one resets the learner),
                  n policy-evaluated requests seen, t tallied types "cost,value,count;..." (first-seen
                  order, at most 64), b the buffer (1-based type indexes, arrival order, space-joined),
                  f 1 once frozen, r / c the frozen duals ('%.17g'), a 1 iff the learned duals were adopted
ARGV[1]  now_ms            number  the argument convention (unused)
ARGV[2]  cost              number  the admit's cost (> 0)
ARGV[3]  value             number  the admit's value (> 0)
ARGV[4]  hold              number  the admit's expected hold (>= 0; 0 = no hold term)
ARGV[5]  p_rate            number  prior rate dual (finite >= 0); numbers cross as Python repr text
ARGV[6]  p_cost            number  prior cost dual (finite >= 0)
ARGV[7]  p_conc            number  concurrency dual (finite >= 0); -1 = none
ARGV[8]  sample_window     number  W: adaptive learning window (integer 1..10000); 0 = static duals
ARGV[9]  rate_per_arrival  number  rateBudget / sum(weight) of the prior workload (adaptive only)
ARGV[10] cost_per_arrival  number  costBudget / sum(weight) (adaptive only)
ARGV[11] fingerprint       string  identifies the config (adaptive only)
Reply    {denied, bid, p_rate, p_cost, phase, seen}: denied 1 = value < bid; bid, p_rate, p_cost (the
         duals that priced this admit) as '%.17g' strings; phase 0 static, 1 learning, 2 frozen on the
         prior, 3 frozen on the learned duals (after this admit); seen = requests tallied so far.
Adaptive The first W policy-evaluated admits are priced with the prior while their (cost, value) types
         are tallied (a 65th distinct type is priced, counted in n, not buffered). After tallying the
         W-th (priced with the prior too): re-solve with weight = count and budgets per-arrival x N
         (N = buffered admits), replay the buffer greedily under both dual pairs (admit iff value >=
         bid and rate budget left >= 1 and cost budget left >= cost; both budgets per-arrival x N) and
         adopt the learned duals iff their revenue is strictly greater; then freeze.
]]
local rcall = redis.call
--- @include "lib/fmt17"
--- @include "lib/fluid_lp"
local cost, value, hold = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local pR, pC, pK = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local W = tonumber(ARGV[8])
local phase, seen = 0, 0
if W > 0 then
  local key = KEYS[1]
  local h = rcall('HMGET', key, 'g', 'n', 't', 'b', 'f', 'r', 'c', 'a')
  local fresh = h[1] ~= ARGV[11]
  if not fresh and h[5] == '1' then
    pR, pC = tonumber(h[6]), tonumber(h[7])
    phase, seen = h[8] == '1' and 3 or 2, tonumber(h[2])
  else
    local n = fresh and 0 or tonumber(h[2])
    local ttext, btext = fresh and '' or h[3], fresh and '' or h[4]
    -- tally this admit's type
    local types, at = {}, nil
    local me = fmt17(cost) .. ',' .. fmt17(value)
    for item in string.gmatch(ttext, '[^;]+') do
      local c, v, k = string.match(item, '([^,]+),([^,]+),([^,]+)')
      types[#types + 1] = {c = tonumber(c), v = tonumber(v), w = tonumber(k), h = 0, id = c .. ',' .. v}
      if types[#types].id == me then at = #types end
    end
    if at == nil and #types < LP_MAX_TYPES then
      types[#types + 1] = {c = cost, v = value, w = 0, h = 0, id = me}
      at = #types
    end
    if at ~= nil then
      types[at].w = types[at].w + 1
      btext = btext == '' and tostring(at) or btext .. ' ' .. at
    end
    n = n + 1
    seen = n
    local parts = {}
    for i = 1, #types do parts[i] = types[i].id .. ',' .. fmt17(types[i].w) end
    ttext = table.concat(parts, ';')
    if n < W then
      phase = 1
      rcall('HSET', key, 'g', ARGV[11], 'n', fmt17(n), 't', ttext, 'b', btext, 'f', '0')
    else
      -- the W-th: re-solve, replay, adopt iff strictly better, freeze
      local buf = {}
      for x in string.gmatch(btext, '%S+') do buf[#buf + 1] = types[tonumber(x)] end
      local N = #buf
      local Rb, Cb = tonumber(ARGV[9]) * N, tonumber(ARGV[10]) * N
      local lR, lC = solve_fluid_lp(types, Rb, Cb, nil)
      local function replay(qR, qC)
        local rl, cl, rev = Rb, Cb, 0
        for i = 1, N do
          local t = buf[i]
          if not (t.v < qR + qC * t.c) and rl >= 1 and cl >= t.c then
            rl, cl, rev = rl - 1, cl - t.c, rev + t.v
          end
        end
        return rev
      end
      local adopt = replay(lR, lC) > replay(pR, pC)
      local fR, fC = pR, pC
      if adopt then fR, fC = lR, lC end
      phase = adopt and 3 or 2
      rcall('HSET', key, 'g', ARGV[11], 'n', fmt17(n), 't', ttext, 'b', '', 'f', '1', 'r', fmt17(fR),
        'c', fmt17(fC), 'a', adopt and '1' or '0')
    end
  end
end
local bid = pR + pC * cost
if pK >= 0 and hold > 0 and hold < math.huge then bid = bid + pK * hold end
return {value < bid and 1 or 0, fmt17(bid), fmt17(pR), fmt17(pC), phase, seen}
