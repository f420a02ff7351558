-- ONLINE: mark a feed online (hub/storage/changes.py); if it was not online (expired or
-- never), log a gap so that a resume from before it is incomplete.
-- KEYS: online set, the feed's stream. ARGV: feed, expiry, now.
-- Returns the stream's newest id (a cursor to resume from), or "" when the stream is empty.
-- 500 is hub/storage/changes.py's STREAM_MAXLEN (tests/unit/test_lua_scripts.py checks).
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not s) or tonumber(s) < tonumber(ARGV[3]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 500, '*', 'op', 'gap', 'ids', '[]')
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last == 0 then return '' end
return last[1][1]
