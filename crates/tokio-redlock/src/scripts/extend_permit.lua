-- Compare-and-PEXPIRE of one semaphore slot, as extend.lua, and keep the semaphore's permits
-- record alive at least as long as the extended slot: users that disagree on the number of
-- permits are refused while any permit is held, extended ones included.
-- KEYS[1] = slot key, KEYS[2] = permits record; ARGV[1] = token, ARGV[2] = TTL in ms,
-- ARGV[3] = the number of permits.
-- The record is written only when it is absent or holds the same number (a record of another
-- number belongs to users that came in after ours lapsed: left alone), with PX at least the
-- new TTL and never shortened; best effort (pcall): a refused write (maxmemory) still extends.
-- Returns 1 extended, 0 absent, -1 held by another token, -2 not a string (not a lock).
local v = redis.pcall('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  local limit = redis.pcall('GET', KEYS[2])
  if limit == false or limit == ARGV[3] then
    local keep = math.max(tonumber(ARGV[2]), redis.call('PTTL', KEYS[2]))
    redis.pcall('SET', KEYS[2], ARGV[3], 'PX', keep)
  end
  return 1
end
if not v then return 0 end
if type(v) == 'table' then return -2 end
return -1
