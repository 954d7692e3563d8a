-- Deletes a cached value and gives its bytes back to the tenant's budget.
-- KEYS: value, ledger, sizes, total (as for set.lua); ARGV: key
-- Answers how many values were deleted (0 or 1).
local deleted = redis.call('DEL', KEYS[1])
local size = redis.call('HGET', KEYS[3], ARGV[1])
if size then
  redis.call('DECRBY', KEYS[4], size)
  redis.call('HDEL', KEYS[3], ARGV[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])
return deleted
