-- FLAT_ADD: one activity into many flat feeds (fan-out, copies).
-- KEYS: the feeds' order sets (hub/storage/feedcache.py). ARGV: activity id, max_length,
-- then optionally now, app, base, channel (log and publish, hub/storage/changes.py;
-- without them, nothing is published).
-- Returns the number of feeds that did not hold the activity yet. Only cached feeds
-- (their set exists) are written; each keeps its newest max_length ids and the sentinel.
local n = 0
local keep = -(tonumber(ARGV[2]) + 1)
local now, app, base, chan = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    local added = redis.call('ZADD', k, 0, ARGV[1])
    n = n + added
    redis.call('ZREMRANGEBYRANK', k, 1, keep)
    if added == 1 and now then notify(base, chan, app, now, string.sub(k, #base + 4), 'entry', ARGV[1]) end
  end
end
return n
