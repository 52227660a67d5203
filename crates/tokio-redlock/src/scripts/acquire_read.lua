-- Read (shared) lock on one master. Readers occupy the lock key X with the SHARED sentinel,
-- so every string-based Redlock mutex on X (ours or another library's) excludes them and is
-- excluded by them; each reader has its own lease key, and X's TTL is kept at least the
-- longest live lease.
-- KEYS[1] = X, KEYS[2] = the reader set, KEYS[3] = this reader's lease key,
-- KEYS[4] = the writer intent key
-- ARGV[1] = token, ARGV[2] = TTL in ms, ARGV[3] = the SHARED sentinel,
-- ARGV[4] = the most readers at once
-- Returns {1, readers}     granted (or already ours: a resend)
--         {0, pttl}        X holds a writer's (or any other lock's) token, or the reader cap
--                          is reached: pttl = X's remaining TTL
--         {2, pttl}        a writer waits (its intent key lives pttl ms): new readers queue
--         {-1, pttl}       X or the set is of a type not ours, or the intent key holds a
--                          value without a TTL: not a lock
local tx = redis.call('TYPE', KEYS[1]).ok
local ts = redis.call('TYPE', KEYS[2]).ok
if (tx ~= 'none' and tx ~= 'string') or (ts ~= 'none' and ts ~= 'set') then
  return {-1, redis.call('PTTL', KEYS[1])}
end
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[3] then return {0, redis.call('PTTL', KEYS[1])} end
if v and redis.call('EXISTS', KEYS[3]) == 1 then return {1, redis.call('SCARD', KEYS[2])} end
local intent = redis.call('PTTL', KEYS[4])
-- Writers set their intent with a TTL: a value there without one (of any type) is foreign,
-- and would hold every reader back for good.
if intent == -1 then return {-1, intent} end
if intent >= 0 then return {2, intent} end
-- Members left by an X deleted by hand (or expired with them) are not readers any more.
if not v then redis.call('DEL', KEYS[2]) end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
local keep = math.max(tonumber(ARGV[2]), redis.call('PTTL', KEYS[1]))
redis.call('SET', KEYS[1], ARGV[3], 'PX', keep)
redis.call('PEXPIRE', KEYS[2], keep)
return {1, redis.call('SCARD', KEYS[2])}
