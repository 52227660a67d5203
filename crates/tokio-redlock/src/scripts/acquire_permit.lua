-- Semaphore permit on one master: claims the first free slot of a rotation (design S1: k
-- slots, each an ordinary Redlock mutex key).
-- KEYS[1] = the semaphore's own name key S (read only: in use as a lock?),
-- KEYS[2] = the permits key L (the k every user of S must agree on),
-- KEYS[3..k+2] = the k slot keys in the attempt's rotation order
-- ARGV[1] = token, ARGV[2] = TTL in milliseconds, ARGV[3] = k
-- Returns {1, j, kind}        granted the slot at rotation position j (0-based)
--         {0, pttl, kind}     every slot is held (pttl = the least remaining TTL, ms)
--         {4, j, kind}        every slot is taken, and the one at rotation position j holds
--                             a value without a TTL (of any type): not a permit holder's
--         {3, limit, 0}       L says another k: the users of S disagree; nothing written
--                             (limit = -1 when L is not a number as written here: another
--                             value or another type, which is never overwritten)
-- kind = 1 when S itself exists (the name is also used as a lock: a warning, not an error).
-- Idempotent: a resend with the same token finds its own slot and reports it again.
local k = tonumber(ARGV[3])
local limit = redis.pcall('GET', KEYS[2])
if type(limit) == 'table' then return {3, -1, 0} end
if type(limit) == 'string' and limit ~= ARGV[3] then
  -- Named as a number only when written as this script writes one ('2', not '2.0' or ' 2').
  local recorded = -1
  if #limit <= 9 and string.match(limit, '^[1-9]%d*$') then recorded = tonumber(limit) end
  return {3, recorded, 0}
end
for j = 1, k do
  if redis.pcall('GET', KEYS[j + 2]) == ARGV[1] then
    return {1, j - 1, redis.call('EXISTS', KEYS[1])}
  end
end
local kind = redis.call('EXISTS', KEYS[1])
local keep = math.max(tonumber(ARGV[2]), redis.call('PTTL', KEYS[2]))
redis.call('SET', KEYS[2], ARGV[3], 'PX', keep)
local least = -1
local foreign = -1
for j = 1, k do
  if redis.call('SET', KEYS[j + 2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, j - 1, kind} end
  local pttl = redis.call('PTTL', KEYS[j + 2])
  if pttl >= 0 and (least < 0 or pttl < least) then least = pttl end
  -- No permit holder leaves a slot without a TTL: such a value (of any type) is foreign.
  if pttl == -1 and foreign < 0 then foreign = j - 1 end
end
if foreign >= 0 then return {4, foreign, kind} end
return {0, least, kind}
