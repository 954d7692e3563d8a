-- GCRA over every limit of a policy, in one atomic step.
-- KEYS[i]: the theoretical arrival time (TAT, microseconds) of limit i.
-- ARGV[1]: cost; ARGV[2]: 1 to consume, 0 to only look;
-- then per limit: emission interval and tolerance, in microseconds.
-- Returns {allowed, then per limit: allowed, remaining, reset_us, retry_us}.
-- Redis's clock is the one clock every gateway shares.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local cost = tonumber(ARGV[1])
local consume = ARGV[2] == '1'

local states = {}
local allowed = true
for i, key in ipairs(KEYS) do
  local emission = tonumber(ARGV[1 + 2 * i])
  local tolerance = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + cost * emission
  local ok = new_tat - now <= tolerance
  if not ok then allowed = false end
  states[i] = {emission, tolerance, tat, new_tat, ok}
end

local reply = {allowed and 1 or 0}
for i, key in ipairs(KEYS) do
  local emission, tolerance, tat, new_tat, ok = unpack(states[i])
  local taken = allowed and consume
  local after = taken and new_tat or tat
  if taken then
    -- %d keeps every digit; the key lives until its credit is whole again.
    redis.call('SET', key, string.format('%d', new_tat),
      'PX', math.ceil((new_tat - now) / 1000) + 1)
  end
  local remaining = math.floor((tolerance - (after - now)) / emission)
  if remaining < 0 then remaining = 0 end
  local retry = 0
  if not ok then retry = new_tat - tolerance - now end
  table.insert(reply, ok and 1 or 0)
  table.insert(reply, remaining)
  table.insert(reply, after - now)
  table.insert(reply, retry)
end
return reply
