-- KEYS: session, user index. ARGV: secret. Returns 1 if it was live.
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
