-- civil_from_days(z): (year, month) of day z since 1970-01-01 (inverse of days_from_civil).
local function civil_from_days(z)
  local zz = z + 719468
  local era
  if zz >= 0 then era = math.floor(zz / 146097) else era = math.floor((zz - 146096) / 146097) end
  local doe = zz - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m
  if mp < 10 then m = mp + 3 else m = mp - 9 end
  if m <= 2 then y = y + 1 end
  return y, m
end
