-- Redlock acquire of several resources at once on one master: all keys or none.
-- KEYS[1..m]    = the lock keys (sorted, distinct: the same keys a single-resource lock takes)
-- KEYS[m+1..2m] = their fencing counters (same hash slot each; only when ARGV[3] == '1')
-- ARGV[1] = token, ARGV[2] = TTL in milliseconds, ARGV[3] = '1' to count fencing tokens,
-- ARGV[4] = m
-- Returns {1, 0, ttl, f1..fm}   every key granted (fi = counter i after our increment; none
--                               when not fencing)
--         {0, i, pttl, f1..fm}  key i (0-based) is held by another token or by readers
--                               (pttl = its remaining TTL in ms); nothing was written
--         {-1, i, pttl}         key i exists and is not a string: not a lock; nothing written
-- Idempotent: a resend with the same token finds every key its own and reports the grant
-- without a second increment.
local m = tonumber(ARGV[4])
local fencing = ARGV[3] == '1'
local function counters(reply)
  if fencing then
    for i = 1, m do reply[#reply + 1] = tonumber(redis.call('GET', KEYS[m + i]) or '0') end
  end
  return reply
end
local mine = 0
for i = 1, m do
  local ty = redis.call('TYPE', KEYS[i]).ok
  if ty ~= 'none' then
    if ty ~= 'string' then return {-1, i - 1, redis.call('PTTL', KEYS[i])} end
    if redis.call('GET', KEYS[i]) ~= ARGV[1] then
      return counters({0, i - 1, redis.call('PTTL', KEYS[i])})
    end
    mine = mine + 1
  end
end
if mine == m then return counters({1, 0, redis.call('PTTL', KEYS[1])}) end
local reply = {1, 0, tonumber(ARGV[2])}
for i = 1, m do
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
  if fencing then reply[#reply + 1] = redis.call('INCR', KEYS[m + i]) end
end
return reply
