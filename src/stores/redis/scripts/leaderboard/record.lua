-- Keeps the best score of a user: KEYS[1] the board; ARGV[1] score, ARGV[2] user.
-- A board is created here if missing; it stays marked unbuilt until merged
-- with Postgres, so a board holding only new scores is never taken as whole.
local current = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not current or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
end
return 1
