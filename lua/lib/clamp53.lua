-- clamp53(reply): every number of a reply clamped to +-(2^53-1), in place. Redis converts a reply
-- number to a 64-bit integer (undefined past 2^63) and JSON clients lose precision past 2^53, so no
-- Decision or Forecast field ever leaves that range (a cost of 2^53-1 makes a GCRA retry ~5e19 ms).
-- A decision (five items) in range returns before the loop: LuaJIT ends a trace at a loop, and a
-- five-step loop split every embedded decision into several traces.
local function clamp53(reply)
  local M = 9007199254740991
  local n = #reply
  if n == 5 then
    local a, b, c, d, e = reply[1], reply[2], reply[3], reply[4], reply[5]
    if a <= M and a >= -M and b <= M and b >= -M and c <= M and c >= -M and d <= M and d >= -M
      and e <= M and e >= -M then
      return reply
    end
  end
  for i = 1, n do
    local v = reply[i]
    if v > M then reply[i] = M
    elseif v < -M then reply[i] = -M end
  end
  return reply
end
