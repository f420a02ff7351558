-- READ: a whole hot read of one feed in one call (and atomic, so page and counts agree).
-- KEYS: built flag, order set, group states (or the order set again), marks hash,
-- rendered first page, group members, group actors (these three: or the order set
-- again, for a flat feed): all in the feed's hash tag (Keys.feed_tag), one slot.
-- ARGV: aggregated flag, upper bound ("+" or "(<cursor>"), count, entries wanting bodies,
-- activity key prefix ("" on a Redis Cluster: bodies are fetched by slot, see below),
-- activities per group, actors per group, page token ("" unless this is an aggregated
-- feed's first page), "1" to skip the kept page (it was found out of date), refresh
-- threshold (seconds; 0: feed caches never expire), TTL of a page reservation (seconds).
-- Body keys are not in KEYS: they are in other slots. On a single Redis the script
-- reads them by name (prefix .. id), so a hot read stays one round trip; with an empty
-- prefix it returns the ids alone and hub/storage/feedcache.py reads the bodies by slot.
-- Returns {0} when the feed is not built, {1} when the marks are not loaded,
-- {4, rendered page, marks, unseen, unread, archived flag, refresh} when the rendered
-- first page is current (on a cluster: when it was rendered for as many entries; the
-- caller checks its bodies), else {3, page members, group summaries (aggregated;
-- groups.lua, summary), body ids, bodies, marks (aggregated only, HGETALL form), unseen,
-- unread, archived flag, refresh}. The archived flag (the marks hash's "@" field,
-- hub/storage/archive.py) says the feed may hold archived entries, which the default
-- view leaves out (hub/ops/filtered.py reads it then). Bodies come for the first
-- ``entries`` groups only. refresh is 1 when the built flag's TTL has fallen below the
-- threshold (or it has none): the caller renews the TTL of the feed's keys
-- (fanout.cache_days), so a feed that is read never expires.
-- The rendered page (feedcache.py, page cache) starts with "<entries>\t<next>\t<body ids,
-- comma separated>\n". It is current when it was rendered for as many entries and every
-- body it holds is still cached (a deleted activity's body goes at once, its removal from
-- feeds follows in a job). On a miss the key is reserved with "?<token>", so that only
-- this reader may store what it renders, and only if no writer dropped the key meanwhile.
local z, gs, mk = KEYS[2], KEYS[3], KEYS[4]
local agg = ARGV[1] == '1'
if redis.call('EXISTS', KEYS[1]) == 0 or not redis.call('ZSCORE', z, '!') then return {0} end
if redis.call('HEXISTS', mk, '!') == 0 then return {1} end
local refresh = 0
local threshold = tonumber(ARGV[10])
if threshold > 0 and redis.call('TTL', KEYS[1]) < threshold then refresh = 1 end
local want, prefix = tonumber(ARGV[4]), ARGV[5]
if agg and ARGV[8] ~= '' then
  local page = ARGV[9] ~= '1' and redis.call('GET', KEYS[5])
  if page and string.sub(page, 1, 1) ~= '?' then
    local entries, bids = string.match(page, '^(%d+)\t[^\t\n]*\t([^\n]*)')
    if tonumber(entries) == want then
      local keys, k = {}, 0
      if prefix ~= '' then
        for id in string.gmatch(bids, '[^,]+') do k = k + 1; keys[k] = prefix .. id end
      end
      if k == 0 or redis.call('EXISTS', unpack(keys)) == k then
        return {4, page, redis.call('HGETALL', mk), count(z, mk, gs, 'seen', agg), count(z, mk, gs, 'read', agg),
                redis.call('HEXISTS', mk, '@'), refresh}
      end
    end
  end
  redis.call('SET', KEYS[5], '?' .. ARGV[8], 'EX', ARGV[11])
end
local members = redis.call('ZREVRANGEBYLEX', z, ARGV[2], '(!', 'LIMIT', 0, tonumber(ARGV[3]))
local second, ids, keys = {}, {}, {}
if agg then
  if #members > 0 then
    local gids = {}
    for i, m in ipairs(members) do gids[i] = string.sub(m, string.find(m, '|', 1, true) + 1) end
    local raws = redis.call('HMGET', gs, unpack(gids))
    local per, maxactors = tonumber(ARGV[6]), tonumber(ARGV[7])
    for i = 1, #raws do
      second[i] = summary(KEYS[6], KEYS[7], gids[i], raws[i], per, maxactors)
      if i <= want and second[i][8] then  -- bodies for the page only
        for _, id in ipairs(second[i][8]) do ids[#ids + 1] = id end
      end
    end
  end
else
  for i = 1, math.min(#members, want) do ids[i] = members[i] end
end
local bodies = {}
if prefix ~= '' then
  for i, id in ipairs(ids) do keys[i] = prefix .. id end
  if #keys > 0 then bodies = redis.call('MGET', unpack(keys)) end
end
local marks = {}
if agg then marks = redis.call('HGETALL', mk) end
return {3, members, second, ids, bodies, marks, count(z, mk, gs, 'seen', agg), count(z, mk, gs, 'read', agg),
        redis.call('HEXISTS', mk, '@'), refresh}
