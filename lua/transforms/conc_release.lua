--[[ conc_release: return one slot of an adaptive concurrency guard and update its limit (spec 9.1), with
the opt-in minRTT recalibration probe (spec 9.2).
KEYS[1]  guard state: hash (see lib/guard_read)
ARGV[1]  now_ms         number  epoch ms; -1 = server clock
ARGV[2]  min_limit      number  integer >= 1
ARGV[3]  max_limit      number  integer >= min_limit
ARGV[4]  initial_limit  number  estimate of a guard with no state yet
ARGV[5]  algorithm      number  0 = gradient2, 1 = aimd
ARGV[6]  rtt_window     number  samples in the no-load RTT window (integer >= 1)
ARGV[7]  smoothing      number  gradient2 EMA weight in (0, 1]
ARGV[8]  tolerance      number  >= 1
ARGV[9]  backoff_ratio  number  aimd multiplicative decrease in [0.5, 1)
ARGV[10] interval_ms    number  recalibration: a probe starts once a phase is this old (0 = no recalibration)
ARGV[11] probe_limit    number  recalibration: the most in flight while a probe runs
ARGV[12] probe_samples  number  recalibration: pure samples that end a probe
ARGV[13] mode           number  0 = the work completed, 1 = it was dropped (failed or timed out: the limit
                                contracts), 2 = the slot is returned unused (a later axis denied): only
                                in flight - 1
ARGV[14] ticket         string  conc_acquire's ticket for this slot: "<start_ms> <slot> <probe id>"
Reply    {limit, inflight, rtt_noload, last_rtt}  (limit = floor(estimate) after the update)
Update   in flight - 1 (never below 0); rtt = max(0, now - start_ms); lastRtt = rtt. Then, with no probe
         running: the sample joins a monotonic deque of the last rtt_window samples, rttNoload = the window
         minimum, and
         gradient2: gradient = 0.5 if dropped, 1 if rtt <= 0, else clamp(tolerance*rttNoload/rtt, 0.5, 1);
           unless (not dropped and slot*2 < estimate): q = sqrt(estimate), n = estimate*gradient + q,
           n = estimate*(1 - smoothing) + n*smoothing, estimate = clamp(n, min_limit, max_limit).
         aimd: dropped or rtt > rttNoload*tolerance => estimate = max(min_limit, floor(estimate*backoff));
           else if slot*2 >= estimate => estimate = min(max_limit, estimate + 1).
         min_limit == max_limit pins the estimate.
Recal    (interval_ms > 0) The first sample starts the baseline phase (b = now). A sample settled with
         now - b >= interval_ms (after its normal update) starts probe k+1 (p = k = k+1, b = now, no pure
         samples). While a probe runs the estimate and the window are frozen (the learned limit is kept;
         conc_acquire admits at most probe_limit); a sample is pure iff it completed (not dropped), was
         admitted under this probe (ticket probe id = p) and its slot <= probe_limit; m = the minimum pure
         RTT. After probe_samples pure samples the baseline is replaced: rttNoload = m, the window holds
         only m, the probe ends and a new baseline phase starts (b = now). A probe that has not collected
         its samples within interval_ms is abandoned (the baseline is kept; b = now): a probe never caps
         the guard for longer than interval_ms.
]]
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/guard_read"
--- @include "lib/guard_write"
local now = resolve_now(ARGV[1])
local lo, hi = tonumber(ARGV[2]), tonumber(ARGV[3])
local aimd, window = tonumber(ARGV[5]) == 1, tonumber(ARGV[6])
local smoothing, tolerance, backoff = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local interval, probe_limit, probe_samples = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local mode = tonumber(ARGV[13])
local recal = interval > 0
local g = guard_read(KEYS[1], tonumber(ARGV[4]), recal)
g.i = math.max(0, g.i - 1)
if mode == 2 then
  if not g.fresh then redis.call('HSET', KEYS[1], 'i', g.i) end
  return {math.floor(g.e), g.i, g.r, g.l}
end
local s1, s2, s3 = string.match(ARGV[14], '^(%S+) (%S+) (%S+)$')
local start, slot, probe = tonumber(s1 or ''), tonumber(s2 or ''), tonumber(s3 or '')
if not (start and slot and probe) then
  error('conc_release: ticket must be "<start_ms> <slot> <probe id>", got "' ..
    string.sub(ARGV[14], 1, 64) .. '"')
end
local dropped = mode == 1
local rtt = math.max(0, now - start)
g.l = rtt
if g.p > 0 then
  if interval > 0 and now - g.b >= interval then
    g.p, g.u, g.m, g.b = 0, 0, -1, now
  elseif not dropped and probe == g.p and slot <= probe_limit then
    g.u = g.u + 1
    if g.m < 0 or rtt < g.m then g.m = rtt end
    if g.u >= probe_samples then
      g.r = g.m
      g.d = fmt17(g.n) .. ' ' .. fmt17(g.m)
      g.n = g.n + 1
      g.p, g.u, g.m, g.b = 0, 0, -1, now
    end
  end
  guard_write(KEYS[1], g, recal)
  return {math.floor(g.e), g.i, g.r, g.l}
end
-- the window minimum: a deque of (index, rtt) with ascending rtt; entries older than the window leave
local idx = g.n
g.n = g.n + 1
local dq = {}
for a, b in string.gmatch(g.d, '(%S+) (%S+)') do
  local j, v = tonumber(a), tonumber(b)
  if j > idx - window and v < rtt then dq[#dq + 1] = j; dq[#dq + 1] = v end
end
dq[#dq + 1] = idx
dq[#dq + 1] = rtt
local parts = {}
for k = 1, #dq do parts[k] = fmt17(dq[k]) end
g.d = table.concat(parts, ' ')
g.r = dq[2]
local e = g.e
if aimd then
  if dropped or rtt > g.r * tolerance then
    e = math.max(lo, math.floor(e * backoff))
  elseif slot * 2 >= e then
    e = math.min(hi, e + 1)
  end
else
  local gradient
  if dropped then
    gradient = 0.5
  elseif rtt <= 0 then
    gradient = 1
  else
    gradient = math.min(1.0, math.max(0.5, tolerance * g.r / rtt))
  end
  if dropped or slot * 2 >= e then
    local n = e * gradient + math.sqrt(e)
    n = e * (1 - smoothing) + n * smoothing
    e = math.min(hi, math.max(lo, n))
  end
end
g.e = e
if interval > 0 then
  if g.b < 0 then
    g.b = now
  elseif now - g.b >= interval then
    g.k = g.k + 1
    g.p, g.u, g.m, g.b = g.k, 0, -1, now
  end
end
guard_write(KEYS[1], g, recal)
return {math.floor(e), g.i, g.r, g.l}
