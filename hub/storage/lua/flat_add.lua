-- FLAT_ADD: one activity into many flat feeds of one slot (fan-out, copies).
-- KEYS: per feed its order set, and with ``now`` its online flag and change stream (one hash tag,
-- Keys.feed_tag). ARGV: activity id, max_length, then optionally now (unix s),
-- app and two per feed: its name and its channel (feed_notify.lua; hub/storage/changes.py).
-- Returns the number of feeds that did not hold the activity yet. Only cached feeds
-- (their set exists) are written; each keeps its newest max_length ids and the sentinel.
-- No key is created, so none without the order set's TTL (hub/storage/feedcache.py).
local n = 0
local keep = -(tonumber(ARGV[2]) + 1)
local now, app = tonumber(ARGV[3]), ARGV[4]
local step = now and 3 or 1
for i = 1, #KEYS, step do
  local k = KEYS[i]
  if redis.call('EXISTS', k) == 1 then
    local added = redis.call('ZADD', k, 0, ARGV[1])
    n = n + added
    redis.call('ZREMRANGEBYRANK', k, 1, keep)
    if added == 1 and now then
      local j = 5 + 2 * ((i - 1) / 3)
      feed_notify(k, KEYS[i + 1], KEYS[i + 2], ARGV[j + 1], now, app, ARGV[j], 'entry', ARGV[1])
    end
  end
end
return n
