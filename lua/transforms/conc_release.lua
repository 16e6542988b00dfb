--[[ conc_release: return one slot of an adaptive concurrency guard and update its limit (spec 9.1).
KEYS[1]  guard state: hash (see lib/guard_read)
ARGV[1]  now_ms         number  epoch ms; -1 = server clock
ARGV[2]  start_ms       number  when the slot was acquired (rtt = max(0, now - start_ms))
ARGV[3]  slot           number  in flight just after that acquire (inflightAtAcquire)
ARGV[4]  dropped        number  1 = the work failed or timed out (the limit contracts), 0 = completed
ARGV[5]  min_limit      number  integer >= 1
ARGV[6]  max_limit      number  integer >= min_limit
ARGV[7]  initial_limit  number  estimate of a guard with no state yet
ARGV[8]  algorithm      number  0 = gradient2, 1 = aimd
ARGV[9]  rtt_window     number  samples in the no-load RTT window (integer >= 1)
ARGV[10] smoothing      number  gradient2 EMA weight in (0, 1]
ARGV[11] tolerance      number  >= 1
ARGV[12] backoff_ratio  number  aimd multiplicative decrease in [0.5, 1)
ARGV[13] sample         number  1 = the work ran: record its RTT and update the limit; 0 = the slot is
                                returned unused (a later axis denied): only in flight - 1
Reply    {limit, inflight, rtt_noload, last_rtt}  (limit = floor(estimate) after the update)
Update   in flight - 1 (never below 0); the RTT sample joins a monotonic deque of the last rtt_window
         samples and rttNoload = the window minimum; lastRtt = rtt. Then
         gradient2: gradient = 0.5 if dropped, 1 if rtt <= 0, else clamp(tolerance*rttNoload/rtt, 0.5, 1);
           unless (not dropped and slot*2 < estimate): q = sqrt(estimate), n = estimate*gradient + q,
           n = estimate*(1 - smoothing) + n*smoothing, estimate = clamp(n, min_limit, max_limit).
         aimd: dropped or rtt > rttNoload*tolerance => estimate = max(min_limit, floor(estimate*backoff));
           else if slot*2 >= estimate => estimate = min(max_limit, estimate + 1).
         min_limit == max_limit pins the estimate.
]]
--- @include "lib/now"
--- @include "lib/fmt17"
--- @include "lib/guard_read"
--- @include "lib/guard_write"
local now = resolve_now(ARGV[1])
local start, slot, dropped = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]) == 1
local lo, hi = tonumber(ARGV[5]), tonumber(ARGV[6])
local aimd, window = tonumber(ARGV[8]) == 1, tonumber(ARGV[9])
local smoothing, tolerance, backoff = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local g = guard_read(KEYS[1], tonumber(ARGV[7]))
g.i = math.max(0, g.i - 1)
if tonumber(ARGV[13]) == 0 then
  if not g.fresh then redis.call('HSET', KEYS[1], 'i', fmt17(g.i)) end
  return {math.floor(g.e), g.i, g.r, g.l}
end
local rtt = math.max(0, now - start)
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
g.l = rtt
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
guard_write(KEYS[1], g)
return {math.floor(e), g.i, g.r, g.l}
