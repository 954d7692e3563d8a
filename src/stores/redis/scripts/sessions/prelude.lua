-- Shared by every session script. Redis's clock is the one clock every
-- gateway shares. A session is a hash; its key expires at the idle expiry,
-- which never passes the absolute one. A user's index is a sorted set of
-- session secrets scored by absolute expiry: reads never have to update
-- it, entries past their absolute expiry are certainly dead, and entries
-- whose session ended earlier are dropped when found missing.
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- {user_id, data, created, absolute, idle, version, expires}, or nil.
-- With `slide`, the idle expiry moves to now + idle, capped by the
-- absolute one; else the expiry is read as it stands.
local function read(key, now, slide)
  local s = redis.call('HMGET', key, 'user_id', 'data', 'created', 'absolute', 'idle', 'version')
  if not s[1] then return nil end
  local session = {s[1], s[2], tonumber(s[3]), tonumber(s[4]), tonumber(s[5]), tonumber(s[6]), 0}
  if slide then
    session[7] = math.min(now + session[5], session[4])
    redis.call('PEXPIREAT', key, string.format('%d', session[7]))
  else
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then return nil end
    session[7] = now + ttl
  end
  return session
end

-- The user's index lives as long as the longest-lived session in it.
local function keep_index_until(index, at, now)
  local ttl = redis.call('PTTL', index)
  if ttl < 0 or now + ttl < at then
    redis.call('PEXPIREAT', index, string.format('%d', at))
  end
end

