-- Release of one reader on one master (also the cleanup of a failed read attempt): removes
-- the reader, then recomputes X's TTL as the longest live lease of the readers left; the
-- last reader leaving deletes X and the set and tells the waiters.
-- KEYS[1] = X, KEYS[2] = the reader set, KEYS[3] = this reader's lease key
-- ARGV[1] = token, ARGV[2] = release channel ('' = do not publish), ARGV[3] = the SHARED
-- sentinel, ARGV[4] = the readers' lease key prefix (a reader's lease key is it .. token),
-- ARGV[5] = '1' to publish with SPUBLISH (sharded pub/sub: a Redis Cluster member, whose
-- channel is hash-tagged into X's slot), else PUBLISH
-- Returns 1 this reader was there and is removed, 0 it was not (absent), -1 X holds a
-- writer's token (this reader is not there), -2 a key of a type not ours.
-- Lease keys of other readers are computed here, not declared: they share X's hash slot.
-- No shebang on purpose: SREM, DEL, PEXPIRE and PUBLISH run at maxmemory.
local was = redis.pcall('SREM', KEYS[2], ARGV[1])
if type(was) == 'table' then return -2 end
redis.call('DEL', KEYS[3])
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' then return -2 end
if v ~= ARGV[3] then
  if was == 1 then return 1 end
  if v then return -1 end
  return 0
end
local keep = 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local p = redis.call('PTTL', ARGV[4] .. member)
  if p > 0 then
    if p > keep then keep = p end
  else
    redis.call('SREM', KEYS[2], member)
  end
end
if keep == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  if ARGV[2] ~= '' then
    if ARGV[5] == '1' then
      redis.pcall('SPUBLISH', ARGV[2], '')
    else
      redis.pcall('PUBLISH', ARGV[2], '')
    end
  end
else
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('PEXPIRE', KEYS[2], keep)
end
return was
