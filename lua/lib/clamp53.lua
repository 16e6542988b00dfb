-- clamp53(reply): every number of a reply clamped to +-(2^53-1), in place. Redis converts a reply
-- number to a 64-bit integer (undefined past 2^63) and JSON clients lose precision past 2^53, so no
-- Decision or Forecast field ever leaves that range (a cost of 2^53-1 makes a GCRA retry ~5e19 ms).
local function clamp53(reply)
  for i = 1, #reply do
    local v = reply[i]
    if v > 9007199254740991 then reply[i] = 9007199254740991
    elseif v < -9007199254740991 then reply[i] = -9007199254740991 end
  end
  return reply
end
