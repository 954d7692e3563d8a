-- Counts a new session against its tenant's budget. KEYS: the tenant's
-- index (session ids scored by absolute expiry). ARGV: the new id, the
-- absolute lifetime in ms, the most live sessions a tenant may hold.
-- Answers 1 when counted, 0 when the budget is spent.
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
