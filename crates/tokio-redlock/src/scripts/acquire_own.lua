-- Redlock acquire with a caller-chosen token (one round trip): granted when the key is
-- absent or already holds the token (a lock re-entered by its holder, or the leftover of an
-- earlier attempt of the same holder).
-- KEYS[1] = lock key, KEYS[2] = fencing counter key (same hash slot; used only when ARGV[3] == '1')
-- ARGV[1] = token, ARGV[2] = TTL in milliseconds, ARGV[3] = '1' to count a fencing token
-- Returns {1, fence, pttl} granted (fence: the counter after INCR for a new key, its current
--                          value for a key that already held the token; 0 when not fencing)
--         {0, fence, pttl} held by another token (pttl = its remaining TTL in ms)
--         {-1, 0, pttl}    the key exists but is not a string: not a lock of ours
-- A key that already holds the token gets its TTL raised to ARGV[2] ms, never lowered: an
-- earlier handle with the same token keeps a deadline the key still outlives, and the new
-- grant's validity (counted from before the request left) is covered too. A key holding the
-- token without a TTL gets one (no key is left without a TTL).
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = 0
  if ARGV[3] == '1' then fence = redis.call('INCR', KEYS[2]) end
  return {1, fence, tonumber(ARGV[2])}
end
local pttl = redis.call('PTTL', KEYS[1])
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return {-1, 0, pttl} end
local fence = 0
if ARGV[3] == '1' then fence = tonumber(redis.call('GET', KEYS[2]) or '0') end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  local ttl = tonumber(ARGV[2])
  if pttl < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
    pttl = ttl
  end
  return {1, fence, pttl}
end
return {0, fence, pttl}
