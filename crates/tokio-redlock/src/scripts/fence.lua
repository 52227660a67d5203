-- Fencing slow path on one master: raise the counter to t, only upward, and only while the
-- lock key still holds our token (a token is issued only to the lock's holder).
-- KEYS[1] = lock key, KEYS[2] = fencing counter key; ARGV[1] = token, ARGV[2] = t
-- Returns {1, t} raised (or already equal by our own earlier raise is impossible: t is new),
--         {0, c}  refused: the counter is already c >= t,
--         {-1, 0} the lock is not ours on this master.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1, 0} end
local c = tonumber(redis.call('GET', KEYS[2]) or '0')
local t = tonumber(ARGV[2])
if c < t then
  redis.call('SET', KEYS[2], ARGV[2])
  return {1, t}
end
return {0, c}
