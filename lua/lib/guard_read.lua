-- guard_read(key, initial): the adaptive concurrency guard's state, from hash `key`.
-- Fields: e estimate ('%.17g'), i in flight, r rttNoload (0 until the first sample), l last RTT,
-- n samples recorded, d the window-minimum deque as space-joined "index rtt" pairs (ascending rtt);
-- recalibration (spec 9.2): b start of the current phase (the baseline's or the probe's; -1 = not
-- started), p id of the running probe (0 = none), k probes started, u pure samples of the running probe,
-- m their minimum RTT (-1 = none yet). A missing key is a fresh guard; state written before the
-- recalibration fields existed reads them as "no probe, phase not started".
-- `recal` false reads only the first six (a guard without recalibration never writes the others).
local function guard_read(key, initial, recal)
  if not recal then
    local h = redis.call('HMGET', key, 'e', 'i', 'r', 'l', 'n', 'd')
    return {e = tonumber(h[1] or '') or initial, i = tonumber(h[2] or '') or 0, r = tonumber(h[3] or '') or 0,
      l = tonumber(h[4] or '') or 0, n = tonumber(h[5] or '') or 0, d = h[6] or '', b = -1, p = 0, k = 0,
      u = 0, m = -1, fresh = not h[1]}
  end
  local h = redis.call('HMGET', key, 'e', 'i', 'r', 'l', 'n', 'd', 'b', 'p', 'k', 'u', 'm')
  return {
    e = tonumber(h[1] or '') or initial,
    i = tonumber(h[2] or '') or 0,
    r = tonumber(h[3] or '') or 0,
    l = tonumber(h[4] or '') or 0,
    n = tonumber(h[5] or '') or 0,
    d = h[6] or '',
    b = tonumber(h[7] or '') or -1,
    p = tonumber(h[8] or '') or 0,
    k = tonumber(h[9] or '') or 0,
    u = tonumber(h[10] or '') or 0,
    m = tonumber(h[11] or '') or -1,
    fresh = not h[1],
  }
end
