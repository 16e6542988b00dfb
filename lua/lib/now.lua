-- resolve_now(raw): the decision instant in epoch ms.
-- ARGV now_ms == -1 is the "server clock" sentinel (the golden vectors use now = 0, so 0 cannot be it):
-- inside Redis it reads TIME, so a fleet sharing one Redis has no clock skew; under lupa the executor
-- substitutes its injected clock before the call, and the shim's TIME answers from that same clock.
local function resolve_now(raw)
  local n = tonumber(raw)
  if n == -1 then
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return n
end
