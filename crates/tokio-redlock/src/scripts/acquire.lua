-- Redlock acquire on one master (one round trip).
-- KEYS[1] = lock key, KEYS[2] = fencing counter key (same hash slot; used only when ARGV[3] == '1'),
-- KEYS[3] = holder record key (same hash slot; only with ARGV[4])
-- ARGV[1] = token, ARGV[2] = TTL in milliseconds, ARGV[3] = '1' to count a fencing token,
-- ARGV[4] = the holder record (optional): written when the lock is granted, expiring with the
-- lock key, so the record exists exactly while the lock does
-- Returns {1, fence, pttl} granted (fence is the counter, 0 when not fencing)
--         {0, fence, pttl} held by another token (pttl = its remaining TTL in ms)
--         {-1, 0, pttl}    the key exists but is not a string: not a lock of ours
-- Idempotent: run twice with the same token (a resend on a fresh connection after the first
-- connection died), the second run reports the grant of the first without touching the key.
-- The holder record `value` at `rkey` expires exactly when the lock key `key` does (PXAT of
-- its PEXPIRETIME; PX `ttl` where PEXPIRETIME is missing, before Redis 7.0, or refused).
-- Best effort: a refused write (maxmemory, ACL) leaves the lock without a record.
local function record(key, rkey, value, ttl)
  local at = redis.pcall('PEXPIRETIME', key)
  if type(at) == 'number' and at > 0 then
    redis.pcall('SET', rkey, value, 'PXAT', at)
  else
    redis.pcall('SET', rkey, value, 'PX', ttl)
  end
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if ARGV[4] then record(KEYS[1], KEYS[3], ARGV[4], ARGV[2]) end
  local fence = 0
  if ARGV[3] == '1' then fence = redis.call('INCR', KEYS[2]) end
  return {1, fence, tonumber(ARGV[2])}
end
local pttl = redis.call('PTTL', KEYS[1])
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return {-1, 0, pttl} end
local fence = 0
if ARGV[3] == '1' then fence = tonumber(redis.call('GET', KEYS[2]) or '0') end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[4] and pttl > 0 then record(KEYS[1], KEYS[3], ARGV[4], pttl) end
  return {1, fence, pttl}
end
return {0, fence, pttl}
