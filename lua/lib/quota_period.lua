--- @include "lib/days_from_civil"
--- @include "lib/civil_from_days"
-- quota_period(now, mode, period_ms, anchor, offset_ms, week_starts_on): (start, reset) of the quota
-- period holding now. mode 1 = calendar-month, 2 = calendar-week, 3 = calendar-day, 4 = fixed.
-- Calendar modes use a fixed UTC offset (no DST), 1970-01-01 was a Thursday (dow 4, 0 = Sunday).
local function quota_period(now, mode, period_ms, anchor, offset_ms, week_starts_on)
  local DAY = 86400000
  if mode == 4 then
    local start = anchor + math.floor((now - anchor) / period_ms) * period_ms
    return start, start + period_ms
  end
  local day = math.floor((now + offset_ms) / DAY)
  if mode == 3 then
    return day * DAY - offset_ms, (day + 1) * DAY - offset_ms
  end
  if mode == 2 then
    local dow = (day + 4) % 7
    local shift = (dow - week_starts_on) % 7
    local sd = day - shift
    return sd * DAY - offset_ms, (sd + 7) * DAY - offset_ms
  end
  local y, m = civil_from_days(day)
  local ny, nm = y, m + 1
  if nm > 12 then ny, nm = y + 1, 1 end
  return days_from_civil(y, m, 1) * DAY - offset_ms, days_from_civil(ny, nm, 1) * DAY - offset_ms
end
