-- Compare-and-PEXPIRE: reset the TTL from now only if the key still holds our token.
-- Never re-creates a key. KEYS[1] = lock key; ARGV[1] = token, ARGV[2] = TTL in ms
-- KEYS[2] = holder record key, ARGV[3] = the record (both optional): rewritten to expire with
-- the extended key while the lock is ours (best effort: a refused write still extends the lock)
-- Returns 1 extended, 0 absent, -1 held by another token, -2 not a string (not a lock).
-- No shebang on purpose: PEXPIRE is allowed at maxmemory, so a full master can still extend.
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
local v = redis.pcall('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if ARGV[3] then record(KEYS[1], KEYS[2], ARGV[3], ARGV[2]) end
  return 1
end
if not v then return 0 end
if type(v) == 'table' then return -2 end
return -1
