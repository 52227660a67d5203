-- Compare-and-PEXPIRE of a multi-resource lock on one master, all or nothing: resets the
-- TTL of every key only if every key still holds our token. Never re-creates a key.
-- KEYS = the lock keys; ARGV[1] = token, ARGV[2] = TTL in ms
-- Returns 1 extended, 0 some key is gone (none extended), -1 a key holds another token,
--         -2 a key is not a string (not a lock).
-- No shebang on purpose, as extend.lua: PEXPIRE runs at maxmemory.
local mine, other, wrong = 0, 0, 0
for _, key in ipairs(KEYS) do
  local v = redis.pcall('GET', key)
  if v == ARGV[1] then
    mine = mine + 1
  elseif type(v) == 'table' then
    wrong = wrong + 1
  elseif v then
    other = other + 1
  end
end
if mine == #KEYS then
  for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[2]) end
  return 1
end
if wrong > 0 then return -2 end
if other > 0 then return -1 end
return 0
