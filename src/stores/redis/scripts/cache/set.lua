-- Stores a cached value within its tenant's budget of keys and bytes.
-- KEYS: value, ledger (zset: key -> expiry ms), sizes (hash: key -> bytes),
--       total (the tenant's bytes)
-- ARGV: key, value, ttl seconds, charged bytes, max keys, max bytes,
--       ledger ttl ms
-- Answers {1, 0} when stored, {-1, keys} over the key budget, {-2, bytes}
-- over the byte budget.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Entries whose values expired are given back, a bounded number per call.
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, member in ipairs(expired) do
  local size = redis.call('HGET', KEYS[3], member)
  if size then
    redis.call('DECRBY', KEYS[4], size)
    redis.call('HDEL', KEYS[3], member)
  end
  redis.call('ZREM', KEYS[2], member)
end

local charged = tonumber(ARGV[4])
local old = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if old == 0 then
  local count = redis.call('ZCARD', KEYS[2])
  if count >= tonumber(ARGV[5]) then
    return {-1, count}
  end
end
local total = tonumber(redis.call('GET', KEYS[4]) or '0')
if total - old + charged > tonumber(ARGV[6]) then
  return {-2, total}
end

local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
redis.call('ZADD', KEYS[2], now + ttl * 1000, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], charged)
redis.call('INCRBY', KEYS[4], charged - old)
-- The ledger outlives every value it counts, and goes with an idle tenant.
for i = 2, 4 do
  redis.call('PEXPIRE', KEYS[i], ARGV[7])
end
return {1, 0}
