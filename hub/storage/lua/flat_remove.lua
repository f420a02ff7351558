-- FLAT_REMOVE: one activity out of many flat feeds (deletes, unfollows).
-- KEYS: per feed its order set, then, when ARGV has now, its online flag and change
-- stream. ARGV: activity id, then optionally now, app, head (Keys.feed_tag's
-- '<prefix>:{<app>:'; log and publish, hub/storage/changes.py). Returns the number of feeds that held it.
local n = 0
local now, app, head = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local step = now and 3 or 1
for i = 1, #KEYS, step do
  local removed = redis.call('ZREM', KEYS[i], ARGV[1])
  n = n + removed
  if removed == 1 and now then notify_feed(head, KEYS[i + 1], KEYS[i + 2], now, app, 'deleted', ARGV[1]) end
end
return n
