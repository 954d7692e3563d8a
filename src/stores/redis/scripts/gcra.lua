-- GCRA over every limit of a policy, in one atomic step.
-- KEYS[i]: the theoretical arrival time (TAT, microseconds) of limit i.
-- ARGV[1]: cost; ARGV[2]: 1 to consume, 0 to only look;
-- then per limit: emission interval and tolerance, in microseconds.
-- Returns {allowed, then per limit: allowed, remaining, reset_us, retry_us}.
-- Redis's clock is the one clock every gateway shares.
-- Runs on every rate-limited request: no tables beyond the reply, and one
-- SET per consumed limit.
local time = redis.call('TIME')
local now = time[1] * 1000000 + time[2]
local cost = tonumber(ARGV[1])
local n = #KEYS

-- The request passes only if every limit lets it; a limit's TAT goes into
-- the reply's slot until the second pass replaces it.
local reply = {1}
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  reply[4 * i - 2] = tat
  if tat + cost * ARGV[1 + 2 * i] - now > tonumber(ARGV[2 + 2 * i]) then reply[1] = 0 end
end

local taken = reply[1] == 1 and ARGV[2] == '1'
for i = 1, n do
  local emission = tonumber(ARGV[1 + 2 * i])
  local tolerance = tonumber(ARGV[2 + 2 * i])
  local tat = reply[4 * i - 2]
  local new_tat = tat + cost * emission
  local ok = new_tat - now <= tolerance
  local after = tat
  if taken then
    after = new_tat
    -- %d keeps every digit; the key lives until its credit is whole again.
    redis.call('SET', KEYS[i], string.format('%d', new_tat),
      'PX', math.ceil((new_tat - now) / 1000) + 1)
  end
  local remaining = math.floor((tolerance - (after - now)) / emission)
  if remaining < 0 then remaining = 0 end
  local retry = 0
  if not ok then retry = new_tat - tolerance - now end
  reply[4 * i - 2] = ok and 1 or 0
  reply[4 * i - 1] = remaining
  reply[4 * i] = after - now
  reply[4 * i + 1] = retry
end
return reply
