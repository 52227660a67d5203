-- Extension of one reader on one master: resets its lease, and keeps X (and the set) alive
-- at least as long. Never revives: an expired lease, or a reader no longer in the set, fails.
-- KEYS[1] = X, KEYS[2] = the reader set, KEYS[3] = this reader's lease key
-- ARGV[1] = token, ARGV[2] = TTL in ms, ARGV[3] = the SHARED sentinel
-- Returns 1 extended, 0 this reader is not there (absent), -1 X holds a writer's token,
-- -2 a key of a type not ours.
-- No shebang on purpose: PEXPIRE runs at maxmemory.
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' then return -2 end
if v ~= ARGV[3] then
  if v then return -1 end
  return 0
end
local member = redis.pcall('SISMEMBER', KEYS[2], ARGV[1])
if type(member) == 'table' then return -2 end
if member == 0 or redis.call('PTTL', KEYS[3]) <= 0 then return 0 end
redis.call('PEXPIRE', KEYS[3], ARGV[2])
local keep = math.max(tonumber(ARGV[2]), redis.call('PTTL', KEYS[1]))
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return 1
