-- AGG_REMOVE: one activity out of its group in many aggregated feeds of one slot
-- (deletes, unfollows).
-- KEYS: as agg_add.lua (six per feed, eight with ``now``). ARGV: activity id, actor, group
-- id, then optionally now (unix s), app and two per feed: its name and its channel
-- (log and publish: feed_notify.lua).
-- Returns the number of feeds that held it. Counts stay exact: the actor's count goes
-- down, and when this was the actor's newest activity in the group its next newest is
-- found by scanning the group's members back from it (the only part that is not
-- O(log n): as many members as lie between the two). An emptied group goes entirely.
local id, actor, gid = ARGV[1], ARGV[2], ARGV[3]
local now, app = tonumber(ARGV[4]), ARGV[5]
local step = now and 8 or 6
local member, field = gid .. '|' .. id .. '|' .. actor, gid .. '|' .. actor
local lo, hi = glo(gid), ghi(gid)

-- The actor's newest activity in the group below ``below``, or nil.
local function previous_of(mz, below)
  local upper = '(' .. gid .. '|' .. below
  while true do
    local ms = redis.call('ZREVRANGEBYLEX', mz, upper, lo, 'LIMIT', 0, 200)
    if #ms == 0 then return nil end
    for _, m in ipairs(ms) do
      local mid, a = split_member(m, gid)
      if a == actor then return mid end
    end
    upper = '(' .. ms[#ms]
  end
end

local n = 0
for i = 1, #KEYS, step do
  local z, h, mz, az, ac = KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3], KEYS[i + 4]
  if redis.call('ZREM', mz, member) == 1 then
    n = n + 1
    redis.call('DEL', KEYS[i + 5])
    local raw = redis.call('HGET', h, gid)
    local st = raw and cjson.decode(raw) or {n = id}
    local top = redis.call('ZREVRANGEBYLEX', mz, hi, lo, 'LIMIT', 0, 1)[1]
    local op = 'entry'
    if not top then
      redis.call('ZREM', z, st.n .. '|' .. gid)
      drop_group(h, mz, az, ac, gid)
      op = 'deleted'
    else
      local had = redis.call('HGET', ac, field)
      if had then
        local newest, count = string.match(had, '^(.*)|(%d+)$')
        count = tonumber(count) - 1
        if newest == id then
          redis.call('ZREM', az, member)
          newest = count > 0 and previous_of(mz, id) or nil
          if newest then redis.call('ZADD', az, 0, gid .. '|' .. newest .. '|' .. actor) end
        end
        if newest and count > 0 then
          redis.call('HSET', ac, field, newest .. '|' .. count)
        else
          redis.call('HDEL', ac, field)
          if newest then redis.call('ZREM', az, gid .. '|' .. newest .. '|' .. actor) end
        end
      end
      local newest = (split_member(top, gid))
      if raw and newest ~= st.n then
        redis.call('ZREM', z, st.n .. '|' .. gid)
        redis.call('ZADD', z, 0, newest .. '|' .. gid)
        st.n = newest
        redis.call('HSET', h, gid, cjson.encode(st))
      end
    end
    if now then
      local j = 6 + 2 * ((i - 1) / 8)
      feed_notify(z, KEYS[i + 6], KEYS[i + 7], ARGV[j + 1], now, app, ARGV[j], op, gid)
    end
  end
end
return n
