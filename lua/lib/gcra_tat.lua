-- gcra_tat(key, now): the effective theoretical arrival time of a GCRA key, max(now, stored TAT) (a
-- missing key reads as now). The one read of GCRA state: check, peek and forecast share it.
local function gcra_tat(key, now)
  local raw = redis.call('GET', key)
  if raw then
    local tat = tonumber(raw)
    if tat > now then return tat end
  end
  return now
end
