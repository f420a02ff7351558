-- ONLINE: mark a feed online (hub/storage/changes.py); if it was not online (expired or
-- never), log a gap so that a resume from before it is incomplete.
-- KEYS: the feed's online flag, the feed's stream (one hash tag). ARGV: ttl (seconds), the
-- stream's TTL when this creates it (fanout.cache_days, as the feed's other keys: a read
-- renews them all).
-- Returns the stream's newest id (a cursor to resume from), or "" when the stream is empty.
-- 500 is hub/storage/changes.py's STREAM_MAXLEN (tests/unit/test_lua_scripts.py checks).
if redis.call('SET', KEYS[1], '1', 'EX', ARGV[1], 'GET') == false then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 500, '*', 'op', 'gap', 'ids', '[]')
  if redis.call('TTL', KEYS[2]) == -1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last == 0 then return '' end
return last[1][1]
