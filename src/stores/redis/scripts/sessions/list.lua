-- KEYS: user index. ARGV: user_id, session key prefix.
-- Returns {secret, session...} for each live session of the user, and
-- drops index entries whose session has ended on its own.
local now = now_ms()
local index = KEYS[1]
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
local sessions = {}
for _, secret in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local session = read(ARGV[2] .. secret, now, false)
  if not session then
    redis.call('ZREM', index, secret)
  elseif session[1] == ARGV[1] then
    table.insert(session, 1, secret)
    table.insert(sessions, session)
  end
end
return sessions
