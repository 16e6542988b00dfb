-- solve_fluid_lp(types, R, C, K): solveFluidLp (spec 10.5), the joint-LP duals pR, pC, pK of a workload
-- (types {c = cost, v = value, w = weight, h = hold}; K nil: two budgets, pK = 0).
-- Two budgets: minimise D(pR,pC) = R*pR + C*pC + sum w*max(0, v - pR - pC*c) over the candidates, in
-- this order: (0,0); (v_i,0) for each i; (0, v_i/c_i) for each i with c_i > 1e-9; the intersection of
-- lines i < j (skipped when |c_j - c_i| <= 1e-9). Three budgets: every triple a < b < c of the planes
-- {pR=0}, {pC=0}, {pK=0}, {pR + c_i*pC + h_i*pK = v_i} (in that order), solved by Cramer's rule
-- (skipped when |det| < 1e-12). A candidate with a coordinate < -1e-9 is dropped, the others are
-- clamped to >= 0 (+0, never -0). Among candidates with D <= minD + 1e-7 the most selective wins: most
-- types with reduced value (v - pR - pC*c - pK*h) < -1e-7, then the larger pK, pC, pR (each compared
-- with a 1e-9 tolerance), else the first in candidate order.
local LP_MAX_TYPES = 64
local function solve_fluid_lp(types, R, C, K)
  local n = #types
  -- D at (pR, pC, pK) and how many types it rejects
  local function dual(pR, pC, pK)
    local d, rej = R * pR + C * pC + (K or 0) * pK, 0
    for i = 1, n do
      local t = types[i]
      local red = t.v - pR - pC * t.c - pK * t.h
      if red > 0 then d = d + t.w * red end
      if red < -1e-7 then rej = rej + 1 end
    end
    return d, rej
  end
  -- max(0, x) as +0 for -0 (LuaJIT's math.max(0, -0) is -0: the runtimes would print "-0" and "0")
  local function clamp(x)
    if x <= 0 then return 0 end
    return x
  end
  -- a beats b: more rejected, then larger pK, pC, pR (1e-9 tolerance)
  local function better(a, b)
    if a[5] ~= b[5] then return a[5] > b[5] end
    for k = 3, 1, -1 do
      if a[k] > b[k] + 1e-9 then return true end
      if a[k] < b[k] - 1e-9 then return false end
    end
    return false
  end
  local function det3(a, b, c)
    return a[1] * (b[2] * c[3] - b[3] * c[2]) - a[2] * (b[1] * c[3] - b[3] * c[1])
      + a[3] * (b[1] * c[2] - b[2] * c[1])
  end
  local cand = {}
  if K == nil then
    cand[1] = {0, 0, 0}
    for i = 1, n do cand[#cand + 1] = {types[i].v, 0, 0} end
    for i = 1, n do
      if types[i].c > 1e-9 then cand[#cand + 1] = {0, types[i].v / types[i].c, 0} end
    end
    for i = 1, n - 1 do
      for j = i + 1, n do
        local ci, cj = types[i].c, types[j].c
        if math.abs(cj - ci) > 1e-9 then
          local pC = (types[j].v - types[i].v) / (cj - ci)
          cand[#cand + 1] = {types[i].v - pC * ci, pC, 0}
        end
      end
    end
  else
    local planes = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}}
    for i = 1, n do planes[#planes + 1] = {1, types[i].c, types[i].h, types[i].v} end
    local m = #planes
    for a = 1, m - 2 do
      for b = a + 1, m - 1 do
        for c = b + 1, m do
          local A, B, P = planes[a], planes[b], planes[c]
          local det = det3(A, B, P)
          if math.abs(det) >= 1e-12 then
            local ra, rb, rc = A[4], B[4], P[4]
            cand[#cand + 1] = {
              det3({ra, A[2], A[3]}, {rb, B[2], B[3]}, {rc, P[2], P[3]}) / det,
              det3({A[1], ra, A[3]}, {B[1], rb, B[3]}, {P[1], rc, P[3]}) / det,
              det3({A[1], A[2], ra}, {B[1], B[2], rb}, {P[1], P[2], rc}) / det,
            }
          end
        end
      end
    end
  end
  -- the feasible candidates, clamped, with D and the rejected count; then the most selective minimiser
  local kept, minD = {}, math.huge
  for i = 1, #cand do
    local p = cand[i]
    if p[1] >= -1e-9 and p[2] >= -1e-9 and p[3] >= -1e-9 then
      local pR, pC, pK = clamp(p[1]), clamp(p[2]), clamp(p[3])
      local d, rej = dual(pR, pC, pK)
      kept[#kept + 1] = {pR, pC, pK, d, rej}
      if d < minD then minD = d end
    end
  end
  local best
  for i = 1, #kept do
    local k = kept[i]
    if k[4] <= minD + 1e-7 and (best == nil or better(k, best)) then best = k end
  end
  return best[1], best[2], best[3]
end
