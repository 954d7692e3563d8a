-- KEYS: session. ARGV: expected version ('*' for any), data.
-- Returns {1, session...}, {0} when absent, {-1, version} when stale.
local now = now_ms()
local version = redis.call('HGET', KEYS[1], 'version')
if not version then return {0} end
if ARGV[1] ~= '*' and ARGV[1] ~= version then return {-1, tonumber(version)} end
redis.call('HSET', KEYS[1], 'data', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'version', 1)
local session = read(KEYS[1], now, false)
table.insert(session, 1, 1)
return session
