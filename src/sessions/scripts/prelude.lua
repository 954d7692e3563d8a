-- Shared by every session script. Redis's clock is the one clock every
-- gateway shares. A session is a hash; its key expires at the idle expiry,
-- which never passes the absolute one.
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- {user_id, data, created, absolute, idle, version, expires}, or nil.
local function read(key, now)
  local s = redis.call('HMGET', key, 'user_id', 'data', 'created', 'absolute', 'idle', 'version')
  if not s[1] then return nil end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then return nil end
  return {s[1], s[2], tonumber(s[3]), tonumber(s[4]), tonumber(s[5]), tonumber(s[6]), now + ttl}
end

-- Moves the session's idle expiry to now + idle, capped by its absolute one.
local function slide(key, index, secret, session, now)
  local expires = math.min(now + session[5], session[4])
  redis.call('PEXPIREAT', key, string.format('%d', expires))
  redis.call('ZADD', index, string.format('%d', expires), secret)
  session[7] = expires
end

-- The user's index lives as long as the longest-lived session in it.
local function keep_index_until(index, at, now)
  local ttl = redis.call('PTTL', index)
  if ttl < 0 or now + ttl < at then
    redis.call('PEXPIREAT', index, string.format('%d', at))
  end
end

