-- lp_input(text, R, C, K): the checked input of solveFluidLp (spec 10.5) from ARGV text:
-- `text` "cost,value,weight[,hold];..." (1..LP_MAX_TYPES types, numbers as %.17g or shortest repr),
-- R and C finite > 0, K finite >= 0 or -1 (no concBudget: two budgets, and no type may carry a hold;
-- with K every type must). Returns types {c, v, w, h}, R, C, K (nil for two budgets); a bad input is
-- an error naming the field and the value.
local function lp_input(text, r_text, c_text, k_text)
  local function bad(what, v)
    error('solveFluidLp: ' .. what .. ', got ' .. tostring(v), 0)
  end
  local function num(s, what, positive)
    local x = tonumber(s)
    if x == nil or x ~= x or x == math.huge or x == -math.huge then bad(what .. ' must be a finite number', s) end
    if x < 0 or (positive and x == 0) then bad(what .. (positive and ' must be > 0' or ' must be >= 0'), s) end
    return x
  end
  local K = tonumber(k_text)
  if K == nil or K ~= K or K == math.huge then bad('concBudget must be a finite number', k_text) end
  local three = K >= 0
  local types = {}
  for item in string.gmatch(text, '[^;]+') do
    local f = {}
    for x in string.gmatch(item, '[^,]+') do f[#f + 1] = x end
    local n = #types + 1
    if n > LP_MAX_TYPES then bad('at most ' .. LP_MAX_TYPES .. ' types', 'more') end
    if (three and #f ~= 4) or (not three and #f ~= 3) then
      bad('types[' .. (n - 1) .. '] needs ' .. (three and 'cost,value,weight,hold (concBudget is set)'
        or 'cost,value,weight (a hold needs concBudget)'), item)
    end
    local where = 'types[' .. (n - 1) .. '].'
    types[n] = {c = num(f[1], where .. 'cost'), v = num(f[2], where .. 'value'),
                w = num(f[3], where .. 'weight'), h = three and num(f[4], where .. 'hold') or 0}
  end
  if #types == 0 then bad('types must not be empty', "''") end
  return types, num(r_text, 'rateBudget', true), num(c_text, 'costBudget', true), three and K or nil
end
