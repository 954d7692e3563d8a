-- KEYS: session, user index. ARGV: secret, 1 to slide the idle expiry.
local now = now_ms()
local session = read(KEYS[1], now)
if not session then return false end
if ARGV[2] == '1' then slide(KEYS[1], KEYS[2], ARGV[1], session, now) end
return session
