-- feed_notify: notify (notify.lua) for one feed of the fan-out scripts, which gives a change
-- stream that it creates the TTL of the feed's order set ``z``, so a fan-out write leaves no
-- key of a feed without a TTL (fanout.cache_days, hub/storage/feedcache.py). Only a feed
-- that is online pays for the two extra calls. A shared piece (no KEYS or ARGV of its own): put after notify.lua and
-- before FLAT_ADD, FLAT_REMOVE, AGG_ADD and AGG_REMOVE by hub/storage/scripts.py.
local function feed_notify(z, online, stream, chan, now, app, feed, op, id)
  if redis.call('EXISTS', online) == 0 then return end
  local fresh = redis.call('EXISTS', stream) == 0
  notify(online, stream, chan, now, app, feed, op, id)
  if fresh then
    local at = redis.call('PEXPIRETIME', z)
    if at > 0 then redis.call('PEXPIREAT', stream, at) end
  end
end
