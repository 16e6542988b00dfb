-- fmt17(v): a number as text that round-trips the double exactly (the upstream state encoding).
local function fmt17(v)
  return string.format('%.17g', v)
end
