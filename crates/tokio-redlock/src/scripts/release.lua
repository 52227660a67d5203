-- Compare-and-delete: delete the lock key only if it still holds our token, then tell the
-- resource's waiters on its release channel.
-- KEYS[1] = lock key; ARGV[1] = token, ARGV[2] = release channel ('' = do not publish: the
-- cleanup of a failed attempt frees nothing a waiter could take), ARGV[3] = '1' to publish
-- with SPUBLISH (sharded pub/sub, Redis 7: a Redis Cluster member, whose channel is
-- hash-tagged into the lock key's slot), else PUBLISH
-- KEYS[2] = holder record key (optional): deleted with the lock key if it is our token's
-- record (its first line is `token=<token>`)
-- Returns 1 deleted, 0 absent, -1 held by another token, -2 not a string (not a lock).
-- No shebang on purpose: a legacy script is not refused up front at maxmemory, and DEL and
-- PUBLISH are allowed there, so a full master can still release.
local v = redis.pcall('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if KEYS[2] then
    local prefix = 'token=' .. ARGV[1] .. '\n'
    local record = redis.pcall('GET', KEYS[2])
    if type(record) == 'string' and string.sub(record, 1, #prefix) == prefix then
      redis.pcall('DEL', KEYS[2])
    end
  end
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
