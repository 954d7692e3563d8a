-- Merges best scores read from Postgres into the board: KEYS[1] the board,
-- KEYS[2] its mark; ARGV[1] how long to mark the board built, in ms (0 for
-- a part of a merge that more parts follow); ARGV[2..] score, user pairs.
-- Taking the higher of each pair keeps a score that a submission recorded
-- while Postgres was being read.
for i = 2, #ARGV, 2 do
  local current = redis.call('ZSCORE', KEYS[1], ARGV[i + 1])
  if not current or tonumber(current) < tonumber(ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
if tonumber(ARGV[1]) > 0 then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
end
return 1
