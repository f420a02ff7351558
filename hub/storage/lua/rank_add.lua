-- RANK_ADD: one activity into the rank index of many ranked flat feeds
-- (hub/storage/rankindex.py). KEYS: pairs of (feed order set, rank index). ARGV: activity
-- id, its score, max_length. Only cached feeds are indexed; an index past twice the
-- feed's length drops the ids the feed no longer holds. An index it creates gets the
-- feed's TTL (fanout.cache_days: a feed's keys expire together). All pairs in one slot.
-- Returns 0.
local id, score, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 1, #KEYS, 2 do
  local f, r = KEYS[i], KEYS[i + 1]
  if redis.call('EXISTS', f) == 1 then
    if redis.call('ZADD', r, score, id) == 1 and redis.call('ZCARD', r) == 1 then
      local at = redis.call('PEXPIRETIME', f)
      if at > 0 then redis.call('PEXPIREAT', r, at) end
    end
    if redis.call('ZCARD', r) > 2 * keep + 1 then
      for _, m in ipairs(redis.call('ZRANGE', r, 0, -1)) do
        if not redis.call('ZSCORE', f, m) then redis.call('ZREM', r, m) end
      end
    end
  end
end
return 0
