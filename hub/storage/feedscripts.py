"""The Lua scripts behind :mod:`hub.storage.feedcache` (layout and guarantees there).

Each runs atomically inside Redis: fan-out writes 100 feeds per call, and a hot read is
one call.
"""

from __future__ import annotations

from hub.storage.changes import NOTIFY_LUA
from hub.storage.marks import COUNT_LUA

# Change log + publish (hub/storage/changes.py): the scripts take optional trailing ARGV
# now, app, base (Keys.base), channel; without them (rebuilds) nothing is published.
FLAT_ADD = NOTIFY_LUA + """
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
"""

FLAT_REMOVE = NOTIFY_LUA + """
local n = 0
local now, app, base, chan = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
for i, k in ipairs(KEYS) do
  local removed = redis.call('ZREM', k, ARGV[1])
  n = n + removed
  if removed == 1 and now then notify(base, chan, app, now, string.sub(k, #base + 4), 'deleted', ARGV[1]) end
end
return n
"""

AGG_ADD = NOTIFY_LUA + """
local id, actor, t, gkey, gid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local maxlen = tonumber(ARGV[6])
local now, app, base, chan = tonumber(ARGV[7]), ARGV[8], ARGV[9], ARGV[10]
local n = 0
for i = 1, #KEYS, 3 do
  local z, h = KEYS[i], KEYS[i + 1]
  local before = n
  if redis.call('EXISTS', z) == 1 then
    local raw = redis.call('HGET', h, gid)
    if raw then
      local st = cjson.decode(raw)
      if st.m[id] == nil then
        st.m[id] = actor
        if t < st.c then st.c = t end
        if id > st.n then
          redis.call('ZREM', z, st.n .. '|' .. gid)
          st.n = id
          redis.call('ZADD', z, 0, id .. '|' .. gid)
        end
        redis.call('HSET', h, gid, cjson.encode(st))
        n = n + 1
      end
    else
      redis.call('HSET', h, gid, cjson.encode({k = gkey, m = {[id] = actor}, c = t, n = id}))
      redis.call('ZADD', z, 0, id .. '|' .. gid)
      n = n + 1
      local over = redis.call('ZCARD', z) - 1 - maxlen
      if over > 0 then
        for _, m in ipairs(redis.call('ZRANGE', z, 1, over)) do
          redis.call('HDEL', h, string.sub(m, string.find(m, '|', 1, true) + 1))
        end
        redis.call('ZREMRANGEBYRANK', z, 1, over)
      end
    end
  end
  if n > before then
    redis.call('DEL', KEYS[i + 2])  -- the rendered first page is out of date
    if now then notify(base, chan, app, now, string.sub(z, #base + 4), 'entry', gid) end
  end
end
return n
"""

AGG_REMOVE = NOTIFY_LUA + """
local id, gid = ARGV[1], ARGV[2]
local now, app, base, chan = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local n = 0
for i = 1, #KEYS, 3 do
  local z, h = KEYS[i], KEYS[i + 1]
  local raw = redis.call('HGET', h, gid)
  if raw then
    local st = cjson.decode(raw)
    if st.m[id] ~= nil then
      st.m[id] = nil
      n = n + 1
      redis.call('DEL', KEYS[i + 2])
      redis.call('ZREM', z, st.n .. '|' .. gid)
      local newest = nil
      for k, _ in pairs(st.m) do
        if newest == nil or k > newest then newest = k end
      end
      local op = 'entry'
      if newest == nil then
        redis.call('HDEL', h, gid)
        op = 'deleted'
      else
        st.n = newest
        redis.call('ZADD', z, 0, newest .. '|' .. gid)
        redis.call('HSET', h, gid, cjson.encode(st))
      end
      if now then notify(base, chan, app, now, string.sub(z, #base + 4), op, gid) end
    end
  end
end
return n
"""

# Read side: a whole hot read in one call (and atomic, so page and counts agree).
# KEYS: built flag, order set, group states (or the order set again), marks hash, active
# users, celebrities, rendered first page (or the order set again). ARGV: aggregated flag,
# upper bound ("+" or "(<cursor>"), count, entries wanting bodies, activity key prefix,
# activities per group, user, now, pulls celebrities flag, actors per group, page token
# ("" unless this is an aggregated feed's first page). Body keys are not in KEYS: the hub
# runs on one Redis, not a cluster.
# Returns {0} when the feed is not built, {1} when the marks are not loaded, {2} when the
# celebrity set is not loaded, {4, rendered page, marks, unseen, unread, celebrities} when
# the rendered first page is current, else {3, page members, group summaries
# (aggregated), body ids, bodies, marks (aggregated only, HGETALL form), unseen, unread,
# celebrities}.
# A group summary is everything of the group's entry but its bodies, so Python does no
# per-member work: {id, key, created_at, newest id, activity count, actor count, newest
# distinct actors, newest activity ids}, or {} for a state that is gone (not expected
# inside one script). Bodies come for the first ``entries`` groups only.
# The rendered page (feedcache.py, page cache) starts with "<entries>\t<next>\t<body ids,
# comma separated>\n". It is current when it was rendered for as many entries and every
# body it holds is still cached (a deleted activity's body goes at once, its removal from
# feeds follows in a job). On a miss the key is reserved with "?<token>", so that only
# this reader may store what it renders, and only if no writer dropped the key meanwhile.
READ = COUNT_LUA + """
local z, gs, mk = KEYS[2], KEYS[3], KEYS[4]
local agg = ARGV[1] == '1'
redis.call('ZADD', KEYS[5], ARGV[8], ARGV[7])
if redis.call('EXISTS', KEYS[1]) == 0 or not redis.call('ZSCORE', z, '!') then return {0} end
if redis.call('HEXISTS', mk, '!') == 0 then return {1} end
local celebs = {}
if ARGV[9] == '1' then
  celebs = redis.call('SMEMBERS', KEYS[6])
  if redis.call('SISMEMBER', KEYS[6], '!') == 0 then return {2} end
end
local want, prefix = tonumber(ARGV[4]), ARGV[5]
if agg and ARGV[11] ~= '' then
  local page = redis.call('GET', KEYS[7])
  if page and string.sub(page, 1, 1) ~= '?' then
    local entries, bids = string.match(page, '^(%d+)\\t[^\\t\\n]*\\t([^\\n]*)')
    if tonumber(entries) == want then
      local keys, k = {}, 0
      for id in string.gmatch(bids, '[^,]+') do k = k + 1; keys[k] = prefix .. id end
      if k == 0 or redis.call('EXISTS', unpack(keys)) == k then
        return {4, page, redis.call('HGETALL', mk), count(z, mk, gs, 'seen', agg), count(z, mk, gs, 'read', agg),
                celebs}
      end
    end
  end
  redis.call('SET', KEYS[7], '?' .. ARGV[11], 'EX', 60)
end
local members = redis.call('ZREVRANGEBYLEX', z, ARGV[2], '(!', 'LIMIT', 0, tonumber(ARGV[3]))
local second, ids, keys = {}, {}, {}
if agg then
  if #members > 0 then
    local gids = {}
    for i, m in ipairs(members) do gids[i] = string.sub(m, string.find(m, '|', 1, true) + 1) end
    local raws = redis.call('HMGET', gs, unpack(gids))
    local per, maxactors = tonumber(ARGV[6]), tonumber(ARGV[10])
    for i = 1, #raws do
      if not raws[i] then
        second[i] = {}
      else
        local st = cjson.decode(raws[i])
        local sm, m, n = st.m, {}, 0
        for id in pairs(sm) do n = n + 1; m[n] = id end
        if n > 1 then table.sort(m) end  -- oldest first: read it backwards
        local newest, actors, seen, nactors, k = {}, {}, {}, 0, 0
        for j = n, 1, -1 do
          if k < per then
            k = k + 1
            newest[k] = m[j]
            if i <= want then ids[#ids + 1] = m[j] end  -- bodies for the page only
          end
          local actor = sm[m[j]]
          if not seen[actor] then
            seen[actor] = true
            nactors = nactors + 1
            if nactors <= maxactors then actors[nactors] = actor end
          end
        end
        second[i] = {gids[i], st.k, st.c, st.n, n, nactors, actors, newest}
      end
    end
  end
else
  for i = 1, math.min(#members, want) do ids[i] = members[i] end
end
for i, id in ipairs(ids) do keys[i] = prefix .. id end
local bodies = {}
if #keys > 0 then bodies = redis.call('MGET', unpack(keys)) end
local marks = {}
if agg then marks = redis.call('HGETALL', mk) end
return {3, members, second, ids, bodies, marks, count(z, mk, gs, 'seen', agg), count(z, mk, gs, 'read', agg), celebs}
"""

# KEYS: rendered page. ARGV: the token the read script reserved it with, the page, ttl.
STORE_PAGE = """
if redis.call('GET', KEYS[1]) ~= '?' .. ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
