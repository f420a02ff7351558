-- FLAT_REMOVE: one activity out of many flat feeds (deletes, unfollows).
-- KEYS: the feeds' order sets. ARGV: activity id, then optionally now, app, base, channel
-- (log and publish, hub/storage/changes.py). Returns the number of feeds that held it.
local n = 0
local now, app, base, chan = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
for i, k in ipairs(KEYS) do
  local removed = redis.call('ZREM', k, ARGV[1])
  n = n + removed
  if removed == 1 and now then notify(base, chan, app, now, string.sub(k, #base + 4), 'deleted', ARGV[1]) end
end
return n
