-- FLAT_REMOVE: one activity out of many flat feeds of one slot (deletes, unfollows).
-- KEYS: as flat_add.lua (one per feed, three with ``now``). ARGV: activity id, then optionally
-- now (unix s), app and two per feed: its name and its channel (feed_notify.lua).
-- Returns the number of feeds that held it.
local n = 0
local now, app = tonumber(ARGV[2]), ARGV[3]
local step = now and 3 or 1
for i = 1, #KEYS, step do
  local removed = redis.call('ZREM', KEYS[i], ARGV[1])
  n = n + removed
  if removed == 1 and now then
    local j = 4 + 2 * ((i - 1) / 3)
    feed_notify(KEYS[i], KEYS[i + 1], KEYS[i + 2], ARGV[j + 1], now, app, ARGV[j], 'deleted', ARGV[1])
  end
end
return n
