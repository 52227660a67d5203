-- Redlock acquire on one master (one round trip).
-- KEYS[1] = lock key, KEYS[2] = fencing counter key (same hash slot; used only when ARGV[3] == '1'),
-- KEYS[3] = holder record key (same hash slot; only with ARGV[4])
-- ARGV[1] = token, ARGV[2] = TTL in milliseconds, ARGV[3] = '1' to count a fencing token,
-- ARGV[4] = the holder record (optional): written with the lock key's PX when it is granted,
-- so the record exists exactly while the lock does (best effort: a refused write, say at
-- maxmemory, leaves the lock granted without a record)
-- Returns {1, fence, pttl} granted (fence is the counter, 0 when not fencing)
--         {0, fence, pttl} held by another token (pttl = its remaining TTL in ms)
--         {-1, 0, pttl}    the key exists but is not a string: not a lock of ours
-- Idempotent: run twice with the same token (a resend on a fresh connection after the first
-- connection died), the second run reports the grant of the first without touching the key.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if ARGV[4] then redis.pcall('SET', KEYS[3], ARGV[4], 'PX', ARGV[2]) end
  local fence = 0
  if ARGV[3] == '1' then fence = redis.call('INCR', KEYS[2]) end
  return {1, fence, tonumber(ARGV[2])}
end
local pttl = redis.call('PTTL', KEYS[1])
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return {-1, 0, pttl} end
local fence = 0
if ARGV[3] == '1' then fence = tonumber(redis.call('GET', KEYS[2]) or '0') end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[4] and pttl > 0 then redis.pcall('SET', KEYS[3], ARGV[4], 'PX', pttl) end
  return {1, fence, pttl}
end
return {0, fence, pttl}
