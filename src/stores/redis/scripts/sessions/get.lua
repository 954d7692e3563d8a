-- KEYS: session. ARGV: 1 to slide the idle expiry.
local session = read(KEYS[1], now_ms(), ARGV[1] == '1')
if not session then return false end
return session
