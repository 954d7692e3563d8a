-- A rotated session keeps its place in its tenant's index under its new
-- id. KEYS: the tenant's index. ARGV: the old id, the new id.
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expiry then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[1], expiry, ARGV[2])
end
return 1
