-- Compare-and-delete: delete the lock key only if it still holds our token, then tell the
-- resource's waiters on its release channel.
-- KEYS[1] = lock key; ARGV[1] = token, ARGV[2] = release channel ('' = do not publish: the
-- cleanup of a failed attempt frees nothing a waiter could take), ARGV[3] = '1' to publish
-- with SPUBLISH (sharded pub/sub, Redis 7: a Redis Cluster member, whose channel is
-- hash-tagged into the lock key's slot), else PUBLISH
-- Returns 1 deleted, 0 absent, -1 held by another token, -2 not a string (not a lock).
-- No shebang on purpose: a legacy script is not refused up front at maxmemory, and DEL and
-- PUBLISH are allowed there, so a full master can still release.
local v = redis.pcall('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('DEL', KEYS[1])
  -- Best effort: an ACL user without channel permissions (`&redlock:released:*`) still
  -- releases; its waiters then wake by expiry or retry delay instead.
  if ARGV[2] ~= '' then
    if ARGV[3] == '1' then
      redis.pcall('SPUBLISH', ARGV[2], '')
    else
      redis.pcall('PUBLISH', ARGV[2], '')
    end
  end
  return 1
end
if not v then return 0 end
if type(v) == 'table' then return -2 end
return -1
