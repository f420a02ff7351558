-- notify: the shared piece put before the fan-out scripts (FLAT_ADD, FLAT_REMOVE, AGG_ADD,
-- AGG_REMOVE): log and publish one change of one feed if a socket follows it
-- (hub/storage/changes.py). No KEYS or ARGV of its own: the caller passes the feed's
-- online flag and change stream (both among its KEYS, in the feed's hash tag), the
-- feed's channel (same tag, so SPUBLISH stays in the script's slot on a Redis Cluster),
-- now (unix s), app, feed, op and the activity or group id.
-- 500 is hub/storage/changes.py's STREAM_MAXLEN (tests/unit/test_lua_scripts.py checks).
local function notify(online, stream, chan, now, app, feed, op, id)
  if redis.call('EXISTS', online) == 1 then
    local ids = cjson.encode({id})
    local c = redis.call('XADD', stream, 'MAXLEN', '~', 500, '*', 'op', op, 'ids', ids)
    redis.call('SPUBLISH', chan, '{"app":' .. cjson.encode(app) .. ',"feed":' .. cjson.encode(feed) ..
      ',"op":"' .. op .. '","ids":' .. ids .. ',"cursor":"' .. c .. '"}')
  end
end
