-- KEYS: session, its new key, user index. ARGV: secret, new secret.
-- The data, expiries and index entry move to the new id; the old id ends.
local now = now_ms()
if not read(KEYS[1], now, false) then return false end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('ZREM', KEYS[3], ARGV[1])
local session = read(KEYS[2], now, false)
redis.call('ZADD', KEYS[3], string.format('%d', session[4]), ARGV[2])
return session
