--[[ esc_release: take what is left of one key's regional escrow for the window starting at `window_start`
(L2, spec 7.2): returns the balance and deletes the entry iff its source lease is that window, else 0 and
nothing changes. The first releaser wins: a second release of the same window finds nothing.
KEYS[1]  escrow hash (see esc_lease)
ARGV[1]  now_ms        number  epoch ms; -1 = server clock (not read: a release is by window, not by time)
ARGV[2]  window_start  number  the source lease (window start) being released
Reply    {released, applied 0|1}
]]
local rcall = redis.call
local st = rcall('HMGET', KEYS[1], 'balance', 'source_lease')
local balance, src = tonumber(st[1]), tonumber(st[2])
if balance == nil or src ~= tonumber(ARGV[2]) then
  return {0, 0}
end
rcall('HDEL', KEYS[1], 'balance', 'expires_at', 'source_lease')  -- its only fields: the key is gone
return {balance, 1}
