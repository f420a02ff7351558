-- notify: the shared piece put before the fan-out scripts (FLAT_ADD, FLAT_REMOVE, AGG_ADD,
-- AGG_REMOVE): log and publish one change of one feed if it is online
-- (hub/storage/changes.py). No KEYS or ARGV of its own: the caller passes base
-- ('<prefix>:<app>'), channel, app, now (unix s), feed, op and the activity or group id.
-- 500 is hub/storage/changes.py's STREAM_MAXLEN (tests/unit/test_lua_scripts.py checks).
local function notify(base, chan, app, now, feed, op, id)
  local s = redis.call('ZSCORE', base .. ':online', feed)
  if s and tonumber(s) >= now then
    local ids = cjson.encode({id})
    local c = redis.call('XADD', base .. ':cs:' .. feed, 'MAXLEN', '~', 500, '*', 'op', op, 'ids', ids)
    redis.call('PUBLISH', chan, '{"app":' .. cjson.encode(app) .. ',"feed":' .. cjson.encode(feed) ..
      ',"op":"' .. op .. '","ids":' .. ids .. ',"cursor":"' .. c .. '"}')
  end
end
