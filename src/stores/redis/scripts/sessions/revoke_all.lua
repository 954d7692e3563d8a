-- KEYS: user index. ARGV: user_id, session key prefix, secret to keep ('').
-- Returns how many live sessions ended.
local ended = 0
for _, secret in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[2] .. secret
  if secret ~= ARGV[3] then
    local owner = redis.call('HGET', key, 'user_id')
    if not owner then
      redis.call('ZREM', KEYS[1], secret)
    elseif owner == ARGV[1] then
      ended = ended + redis.call('DEL', key)
      redis.call('ZREM', KEYS[1], secret)
    end
  end
end
return ended
