-- The board's best ARGV[1] entries and its size, or nothing when the board
-- is not marked built: KEYS[1] the board, KEYS[2] its mark.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return false
end
local entries = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
return {redis.call('ZCARD', KEYS[1]), entries}
