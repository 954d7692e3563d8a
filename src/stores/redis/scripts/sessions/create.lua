-- KEYS: session, user index. ARGV: secret, user_id, data, idle_ms,
-- absolute_ms, most sessions per user, session key prefix.
-- Returns the session, then how many old sessions it ended.
local now = now_ms()
local index = KEYS[2]
local idle = tonumber(ARGV[4])
local absolute = now + tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
-- Over the cap, entries of sessions that ended on their own go first,
-- then the oldest sessions. Entries of another user whose id hashes alike
-- are never touched.
local ended = 0
local excess = redis.call('ZCARD', index) - tonumber(ARGV[6]) + 1
if excess > 0 then
  for _, secret in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if redis.call('EXISTS', ARGV[7] .. secret) == 0 then
      redis.call('ZREM', index, secret)
      excess = excess - 1
    end
  end
end
if excess > 0 then
  for _, secret in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if excess <= 0 then break end
    local key = ARGV[7] .. secret
    if redis.call('HGET', key, 'user_id') == ARGV[2] then
      redis.call('DEL', key)
      redis.call('ZREM', index, secret)
      excess = excess - 1
      ended = ended + 1
    end
  end
end
redis.call('HSET', KEYS[1], 'user_id', ARGV[2], 'data', ARGV[3],
  'created', string.format('%d', now), 'absolute', string.format('%d', absolute),
  'idle', string.format('%d', idle), 'version', 1)
local session = read(KEYS[1], now, true)
redis.call('ZADD', index, string.format('%d', absolute), ARGV[1])
keep_index_until(index, absolute, now)
table.insert(session, ended)
return session
