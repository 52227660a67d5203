-- Write lock on one master: the mutex's acquire (acquire.lua, byte for byte the same
-- replies) plus the writer intent that makes new readers queue behind a waiting writer.
-- KEYS[1] = lock key X, KEYS[2] = fencing counter (used only when ARGV[3] == '1'),
-- KEYS[3] = the writer intent key
-- ARGV[1] = token, ARGV[2] = TTL in ms, ARGV[3] = '1' to count a fencing token,
-- ARGV[4] = this wait's intent id ('' = none: writers not preferred),
-- ARGV[5] = the intent's TTL in ms
-- Returns {1, fence, pttl} granted (the intent, if ours, is withdrawn)
--         {0, fence, pttl} held by another token, or by readers (X = SHARED); the intent
--                          is registered (or refreshed) unless another writer's is there
--         {-1, 0, pttl}    X is not a string: not a lock
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if ARGV[4] ~= '' and redis.pcall('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
  local fence = 0
  if ARGV[3] == '1' then fence = redis.call('INCR', KEYS[2]) end
  return {1, fence, tonumber(ARGV[2])}
end
local pttl = redis.call('PTTL', KEYS[1])
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return {-1, 0, pttl} end
local fence = 0
if ARGV[3] == '1' then fence = tonumber(redis.call('GET', KEYS[2]) or '0') end
if redis.call('GET', KEYS[1]) == ARGV[1] then return {1, fence, pttl} end
if ARGV[4] ~= '' then
  local intent = redis.pcall('GET', KEYS[3])
  if not intent then
    redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
  elseif intent == ARGV[4] then
    redis.call('PEXPIRE', KEYS[3], ARGV[5])
  end
end
return {0, fence, pttl}
