-- count(z, mk, gs, kind, agg): a feed's unseen (kind "seen") or unread ("read") entries.
-- Shared function (no KEYS or ARGV of its own), put before read.lua and count_main.lua by
-- hub/storage/feedscripts.py. z: order set, mk: marks hash (hub/storage/marks.py), gs:
-- group states (aggregated) or the order set again, agg: aggregated flag.
-- Entries newer than the watermark, minus those individually marked at or above their
-- current newest id. Cost: O(log n) per individual mark; the marks hash holds at most
-- the feed's entries (marks of entries that left the feed are pruned, marks.py), so a
-- count is O(feed length) at most whatever the feed's history.
local function count(z, mk, gs, kind, agg)
  local w = redis.call('HGET', mk, kind .. ':*') or ''
  local total
  if w == '' then
    total = redis.call('ZCARD', z) - 1
    if total < 0 then total = 0 end
  else
    total = redis.call('ZLEXCOUNT', z, '(' .. w .. '~', '+')
  end
  local prefix = kind .. ':'
  local all = redis.call('HGETALL', mk)
  for i = 1, #all, 2 do
    local f, mark = all[i], all[i + 1]
    if string.sub(f, 1, #prefix) == prefix and f ~= kind .. ':*' then
      local entry = string.sub(f, #prefix + 1)
      local newest = nil
      if agg then
        local raw = redis.call('HGET', gs, entry)
        if raw then newest = cjson.decode(raw).n end
      elseif redis.call('ZSCORE', z, entry) then
        newest = entry
      end
      if newest and newest > w and mark >= newest then total = total - 1 end
    end
  end
  return total
end
