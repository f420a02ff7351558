-- FLAT_ADD: one activity into many flat feeds (fan-out, copies).
-- KEYS: per feed its order set (hub/storage/feedcache.py), then, when ARGV has now, its
-- online flag and change stream. ARGV: activity id, max_length, then optionally now, app,
-- head (Keys.feed_tag's '<prefix>:{<app>:'; log and publish, hub/storage/changes.py;
-- without them, nothing is published).
-- Returns the number of feeds that did not hold the activity yet. Only cached feeds
-- (their set exists) are written; each keeps its newest max_length ids and the sentinel.
local n = 0
local keep = -(tonumber(ARGV[2]) + 1)
local now, app, head = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local step = now and 3 or 1
for i = 1, #KEYS, step do
  local k = KEYS[i]
  if redis.call('EXISTS', k) == 1 then
    local added = redis.call('ZADD', k, 0, ARGV[1])
    n = n + added
    redis.call('ZREMRANGEBYRANK', k, 1, keep)
    if added == 1 and now then notify_feed(head, KEYS[i + 1], KEYS[i + 2], now, app, 'entry', ARGV[1]) end
  end
end
return n
