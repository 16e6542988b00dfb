--[[ wfe_stats: a weighted fair escrow's window as monitoring shows it (the Fairness and Cost Room views,
the Monitor snapshot's `stats`). Read-only: it decides nothing and writes nothing.
KEYS[1]  pool hash (wfe_check's layout: ws, ev, rb, n, W, U; per tenant w:<t>, u:<t>, o:<t>, s:<t>)
ARGV[1]  now_ms     number  epoch ms; -1 = server clock
ARGV[2]  window_ms  number  window length (>= 1)
ARGV[3]  limit      number  L, whole units per window
ARGV[4]  top        number  tenants listed at most (>= 0), most used first, then earliest joined
Reply    {window_start, budget, evicted, used, tenant_count, tenants}
         window_start: the window the figures belong to (epoch-aligned); a stored window that has ended
         reads as the current one, empty. budget: this window's budget (L for one instance; a region's
         granted slice, -1 when none was stored yet). evicted: units used by evicted tenants. used: all
         units used (evicted included). tenant_count: tenants tracked this window. tenants: up to `top`
         {tenant, weight, used, last_asked_ms} with weight and used as '%.17g' text (Redis truncates a
         reply number to an integer)
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
local now = resolve_now(ARGV[1])
local win, L, top = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local K = KEYS[1]
local ws = tonumber(rcall('HGET', K, 'ws'))
if ws == nil or now >= ws + win then
  return {math.floor(now / win) * win, -1, 0, 0, 0, {}}
end
local flat = rcall('HGETALL', K)
local h = {}
for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
local rows = {}
for f, v in pairs(h) do
  if string.sub(f, 1, 2) == 'w:' then
    local t = string.sub(f, 3)
    rows[#rows + 1] = {t = t, w = tonumber(v), u = tonumber(h['u:' .. t]) or 0, o = tonumber(h['o:' .. t]) or 0,
      s = tonumber(h['s:' .. t]) or 0}
  end
end
table.sort(rows, function(a, b)
  if a.u ~= b.u then return a.u > b.u end
  return a.o < b.o
end)
local listed = {}
for i = 1, math.min(top, #rows) do
  local r = rows[i]
  listed[i] = {r.t, fmt17(r.w), fmt17(r.u), r.s}
end
local budget = tonumber(h['rb'])
if budget == nil then budget = -1 end
if budget > L then budget = L end
return {ws, budget, tonumber(h['ev']) or 0, tonumber(h['U']) or 0, #rows, listed}
