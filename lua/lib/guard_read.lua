-- guard_read(key, initial): the adaptive concurrency guard's state, from hash `key`.
-- Fields: e estimate ('%.17g'), i in flight, r rttNoload (0 until the first sample), l last RTT,
-- n samples recorded, d the window-minimum deque as space-joined "index rtt" pairs (ascending rtt).
-- A missing key is a fresh guard: estimate = initial, nothing in flight, no samples.
local function guard_read(key, initial)
  local h = redis.call('HMGET', key, 'e', 'i', 'r', 'l', 'n', 'd')
  return {
    e = tonumber(h[1] or '') or initial,
    i = tonumber(h[2] or '') or 0,
    r = tonumber(h[3] or '') or 0,
    l = tonumber(h[4] or '') or 0,
    n = tonumber(h[5] or '') or 0,
    d = h[6] or '',
    fresh = not h[1],
  }
end
