-- days_from_civil(y, m, d): days since 1970-01-01 of a proleptic-Gregorian date (Howard Hinnant's
-- algorithm with floored division, exactly as the upstream core computes it).
local function days_from_civil(y, m, d)
  local yy = y
  if m <= 2 then yy = y - 1 end
  local era
  if yy >= 0 then era = math.floor(yy / 400) else era = math.floor((yy - 399) / 400) end
  local yoe = yy - era * 400
  local mshift = 9
  if m > 2 then mshift = -3 end
  local doy = math.floor((153 * (m + mshift) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
