-- Compare-and-delete of a multi-resource lock on one master: deletes each key that still
-- holds our token, and tells each deleted key's waiters on its release channel.
-- KEYS = the lock keys; ARGV[1] = token, ARGV[2] = release channel prefix ('' = do not
-- publish per key: the cleanup of a failed attempt frees nothing a waiter could take),
-- ARGV[3] = one channel to publish on once if a key was deleted ('' = none: a semaphore's
-- slots share their semaphore's channel), ARGV[4] = '1' to publish with SPUBLISH (sharded
-- pub/sub, Redis 7: a Redis Cluster member; a key's channel is then hash-tagged into its
-- slot, `prefix{key}` for a key without a hash tag, and ARGV[3] comes hash-tagged), else
-- PUBLISH
-- Returns 1 every key was ours and is deleted, 0 no key of ours was left for some (absent),
--         -1 a key holds another token, -2 a key is not a string (not a lock).
-- No shebang on purpose, as release.lua: DEL, PUBLISH and SPUBLISH run at maxmemory.
local function publish(channel)
  if ARGV[4] == '1' then
    redis.pcall('SPUBLISH', channel, '')
  else
    redis.pcall('PUBLISH', channel, '')
  end
end
-- A key's own channel: with SPUBLISH, wrapped in braces unless the key has a hash tag
-- (a '{' followed later by a '}' with something in between), as the client subscribes.
local function channel_of(key)
  if ARGV[4] ~= '1' then return ARGV[2] .. key end
  local open = string.find(key, '{', 1, true)
  if open then
    local close = string.find(key, '}', open + 1, true)
    if close and close > open + 1 then return ARGV[2] .. key end
  end
  return ARGV[2] .. '{' .. key .. '}'
end
local deleted, other, wrong = 0, 0, 0
for _, key in ipairs(KEYS) do
  local v = redis.pcall('GET', key)
  if v == ARGV[1] then
    redis.call('DEL', key)
    deleted = deleted + 1
    if ARGV[2] ~= '' then publish(channel_of(key)) end
  elseif type(v) == 'table' then
    wrong = wrong + 1
  elseif v then
    other = other + 1
  end
end
if deleted > 0 and ARGV[3] ~= '' then publish(ARGV[3]) end
if deleted == #KEYS then return 1 end
if wrong > 0 then return -2 end
if other > 0 then return -1 end
return 0
