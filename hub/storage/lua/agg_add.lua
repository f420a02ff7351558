-- AGG_ADD: one activity into its group in many aggregated feeds of one slot (fan-out,
-- rebuilds, copies).
-- KEYS: six per feed: order, states, members, actors, counts (groups.lua), rendered page;
-- with ``now``, two more per feed: its online flag and change stream (one hash tag,
-- Keys.feed_tag).
-- ARGV: activity id, actor, time (created_at form), group key, group id, max_length, then
-- optionally now (unix s), app and two per feed: its name and its channel (log and
-- publish: feed_notify.lua, hub/storage/changes.py).
-- Returns the number of feeds that did not hold the activity yet (each gets it once).
-- Cost per feed: a constant number of O(log n) calls, whatever the size of the group;
-- a new group that pushes one past max_length drops it (drop_group). The states,
-- members, actors and counts it creates (a feed's first group) get the order set's expiry time,
-- so a feed's keys expire together (fanout.cache_days, hub/storage/feedcache.py).
local id, actor, t, gkey, gid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local maxlen = tonumber(ARGV[6])
local now, app = tonumber(ARGV[7]), ARGV[8]
local step = now and 8 or 6
local member, field, entry = gid .. '|' .. id .. '|' .. actor, gid .. '|' .. actor, id .. '|' .. gid
local n = 0
for i = 1, #KEYS, step do
  local z, h, mz, az, ac = KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3], KEYS[i + 4]
  -- Only into a cached feed (the sentinel's set exists); ZADD answers 0 for a re-add.
  if redis.call('EXISTS', z) == 1 and redis.call('ZADD', mz, 0, member) == 1 then
    n = n + 1
    local raw = redis.call('HGET', h, gid)
    if raw then
      local st, dirty = cjson.decode(raw), false
      if t < st.c then st.c, dirty = t, true end
      if id > st.n then
        redis.call('ZREM', z, st.n .. '|' .. gid)
        redis.call('ZADD', z, 0, entry)
        st.n, dirty = id, true
      end
      if dirty then redis.call('HSET', h, gid, cjson.encode(st)) end
      local had = redis.call('HGET', ac, field)
      if had then
        local newest, count = string.match(had, '^(.*)|(%d+)$')
        if id > newest then
          redis.call('ZREM', az, gid .. '|' .. newest .. '|' .. actor)
          redis.call('ZADD', az, 0, member)
          newest = id
        end
        redis.call('HSET', ac, field, newest .. '|' .. (tonumber(count) + 1))
      else
        redis.call('HSET', ac, field, id .. '|1')
        redis.call('ZADD', az, 0, member)
      end
    else
      redis.call('HSET', h, gid, cjson.encode({k = gkey, c = t, n = id}))
      redis.call('ZADD', z, 0, entry)
      redis.call('HSET', ac, field, id .. '|1')
      redis.call('ZADD', az, 0, member)
      if redis.call('HLEN', h) == 1 then  -- the feed's first group: these keys are new
        local at = redis.call('PEXPIRETIME', z)
        if at > 0 then
          for _, key in ipairs({h, mz, az, ac}) do redis.call('PEXPIREAT', key, at) end
        end
      end
      local over = redis.call('ZCARD', z) - 1 - maxlen
      if over > 0 then
        for _, m in ipairs(redis.call('ZRANGE', z, 1, over)) do
          drop_group(h, mz, az, ac, string.sub(m, string.find(m, '|', 1, true) + 1))
        end
        redis.call('ZREMRANGEBYRANK', z, 1, over)
      end
    end
    redis.call('DEL', KEYS[i + 5])  -- the rendered first page is out of date
    if now then
      local j = 9 + 2 * ((i - 1) / 8)
      feed_notify(z, KEYS[i + 6], KEYS[i + 7], ARGV[j + 1], now, app, ARGV[j], 'entry', gid)
    end
  end
end
return n
