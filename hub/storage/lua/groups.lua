-- Shared functions of the aggregated-feed scripts (no KEYS or ARGV of its own): put
-- before agg_add.lua, agg_remove.lua, read.lua and group_summaries.lua by
-- hub/storage/scripts.py. The layout (hub/storage/feedcache.py), per feed:
--   order    sorted set "<newest id>|<gid>" (and the sentinel "!")
--   states   hash gid -> {"k": group key, "c": created_at, "n": newest id}
--   members  sorted set "<gid>|<activity id>|<actor>"
--   actors   sorted set "<gid>|<the actor's newest id in the group>|<actor>"
--   counts   hash "<gid>|<actor>" -> "<the actor's newest id>|<its activities in the group>"
-- Every sorted set has all scores 0, so a group is one contiguous lex range of members
-- and of actors: "[<gid>|" to "(<gid>}" ("}" is the byte after "|"; group ids are hex,
-- activity ids [0-9A-Z], both below "|").

local function glo(gid) return '[' .. gid .. '|' end
local function ghi(gid) return '(' .. gid .. '}' end

-- "<gid>|<id>|<actor>" -> id, actor (an actor may itself hold "|": it is the rest).
local function split_member(m, gid)
  local p = string.find(m, '|', #gid + 2, true)
  return string.sub(m, #gid + 2, p - 1), string.sub(m, p + 1)
end

-- Everything a group holds but its place in the order set. O(size of the group): only
-- when the group is trimmed off or emptied, once in its life.
local function drop_group(states, members, actors, counts, gid)
  local lo, hi = glo(gid), ghi(gid)
  redis.call('HDEL', states, gid)
  redis.call('ZREMRANGEBYLEX', members, lo, hi)
  local fields = {}
  for _, m in ipairs(redis.call('ZRANGEBYLEX', actors, lo, hi)) do
    local _, actor = split_member(m, gid)
    fields[#fields + 1] = gid .. '|' .. actor
    if #fields == 500 then
      redis.call('HDEL', counts, unpack(fields))
      fields = {}
    end
  end
  if #fields > 0 then redis.call('HDEL', counts, unpack(fields)) end
  redis.call('ZREMRANGEBYLEX', actors, lo, hi)
end

-- What the read side needs of a group, in O(log n + per + maxactors):
-- {gid, key, created_at, newest id, activity count, actor count, newest distinct actors,
-- newest activity ids}, or {} when the group is gone (raw is its state, or false).
local function summary(members, actors, gid, raw, per, maxactors)
  if not raw then return {} end
  local st = cjson.decode(raw)
  local lo, hi = glo(gid), ghi(gid)
  local newest = redis.call('ZREVRANGEBYLEX', members, hi, lo, 'LIMIT', 0, per)
  for i, m in ipairs(newest) do newest[i] = (split_member(m, gid)) end
  local names = redis.call('ZREVRANGEBYLEX', actors, hi, lo, 'LIMIT', 0, maxactors)
  for i, m in ipairs(names) do
    local _, actor = split_member(m, gid)
    names[i] = actor
  end
  return {gid, st.k, st.c, st.n, redis.call('ZLEXCOUNT', members, lo, hi), redis.call('ZLEXCOUNT', actors, lo, hi),
          names, newest}
end
