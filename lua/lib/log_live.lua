-- log_live(key, now, window): the scores of a sliding-window log still inside the window (> now -
-- window), ascending, and their count. Read-only: the peek and the forecast share it.
local function log_live(key, now, window)
  local flat = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local live, count = {}, 0
  for i = 2, #flat, 2 do
    local t = tonumber(flat[i])
    if t > now - window then count = count + 1; live[count] = t end
  end
  return live, count
end
