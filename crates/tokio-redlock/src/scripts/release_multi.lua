-- Compare-and-delete of a multi-resource lock on one master: deletes each key that still
-- holds our token, and tells each deleted key's waiters on its release channel.
-- KEYS = the lock keys; ARGV[1] = token, ARGV[2] = release channel prefix ('' = do not
-- publish per key: the cleanup of a failed attempt frees nothing a waiter could take),
-- ARGV[3] = one channel to publish on once if a key was deleted ('' = none: a semaphore's
-- slots share their semaphore's channel)
-- Returns 1 every key was ours and is deleted, 0 no key of ours was left for some (absent),
--         -1 a key holds another token, -2 a key is not a string (not a lock).
-- No shebang on purpose, as release.lua: DEL and PUBLISH run at maxmemory.
local deleted, other, wrong = 0, 0, 0
for _, key in ipairs(KEYS) do
  local v = redis.pcall('GET', key)
  if v == ARGV[1] then
    redis.call('DEL', key)
    deleted = deleted + 1
    if ARGV[2] ~= '' then redis.pcall('PUBLISH', ARGV[2] .. key, '') end
  elseif type(v) == 'table' then
    wrong = wrong + 1
  elseif v then
    other = other + 1
  end
end
if deleted > 0 and ARGV[3] ~= '' then redis.pcall('PUBLISH', ARGV[3], '') end
if deleted == #KEYS then return 1 end
if wrong > 0 then return -2 end
if other > 0 then return -1 end
return 0
