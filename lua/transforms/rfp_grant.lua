--[[ rfp_grant: the region fair pool, one per-window budget L split across regions by weight (federated fair
escrow). A region asks for its total slice `want`; it keeps what it was granted this window (slices never
shrink), and may grow up to L minus what the other regions hold, each other region holding at least its
guaranteed floor(w_j * L / W). So the slices of all regions never sum above L.
KEYS[1]  pool hash: ws window start, w:<region> weight, g:<region> granted slice; expires at the window end
ARGV[1]  now_ms        number  epoch ms; -1 = server clock
ARGV[2]  window_ms     number  window length (>= 1), epoch-aligned
ARGV[3]  limit         number  L, whole units per window
ARGV[4]  region        string  the asking region
ARGV[5]  weight        number  the region's weight (> 0): the sum of its active tenants' weights
ARGV[6]  want          number  the slice the region wants in total this window (>= 0)
ARGV[7]  window_start  number  -1 = the pool's current window; else the window the region asks for: any
                               other window (the region's clock is ahead or behind) grants nothing new
Reply    {granted, window_start}  granted = the region's slice now; window_start = the pool's window
]]
local rcall = redis.call
--- @include "lib/now"
--- @include "lib/fmt17"
local now = resolve_now(ARGV[1])
local win, L, region = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local weight, want, asked = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local flat = rcall('HGETALL', KEYS[1])
local h = {}
for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
local ws = tonumber(h.ws)
if ws == nil or now >= ws + win then
  local fields = {}
  for i = 1, #flat, 2 do fields[#fields + 1] = flat[i] end
  for i = 1, #fields, 1000 do rcall('HDEL', KEYS[1], unpack(fields, i, math.min(i + 999, #fields))) end
  h = {}
  ws = math.floor(now / win) * win
end
local granted = tonumber(h['g:' .. region]) or 0
if asked ~= -1 and asked ~= ws then
  return {0, ws}
end
h['w:' .. region] = fmt17(weight)
if want > granted then
  local regions = {}
  for f, _ in pairs(h) do
    if string.sub(f, 1, 2) == 'w:' then regions[#regions + 1] = string.sub(f, 3) end
  end
  table.sort(regions) -- sums in one order on every executor (pairs() order is unspecified)
  local W = 0
  for _, r in ipairs(regions) do W = W + tonumber(h['w:' .. r]) end
  local others = 0
  for _, r in ipairs(regions) do
    if r ~= region then
      others = others + math.max(tonumber(h['g:' .. r]) or 0, math.floor(tonumber(h['w:' .. r]) * L / W))
    end
  end
  granted = math.max(0, math.min(want, math.max(granted, L - others)))
end
rcall('HSET', KEYS[1], 'ws', fmt17(ws), 'w:' .. region, h['w:' .. region], 'g:' .. region, fmt17(granted))
rcall('PEXPIRE', KEYS[1], math.max(1, ws + win - now))
return {granted, ws}
