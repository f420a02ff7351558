-- count(z, mk, gs, kind, agg): a feed's unseen (kind "seen") or unread ("read") entries.
-- Shared function (no KEYS or ARGV of its own), put before read.lua and count_main.lua by
-- hub/storage/scripts.py. z: order set, mk: marks hash (hub/storage/marks.py), gs:
-- group states (aggregated) or the order set again, agg: aggregated flag.
-- Entries newer than the watermark, minus those individually marked at or above their
-- current newest id, minus those archived (an "archived:<entry>" mark at or above their
-- newest id: hub/storage/archive.py) and not marked. Cost: O(log n) per individual mark;
-- the marks hash holds at most the feed's entries per kind (marks of entries that left
-- the feed are pruned, marks.py), so a count is O(feed length) at most whatever the
-- feed's history.
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
  local marked, archived = {}, {}
  for i = 1, #all, 2 do
    local f, mark = all[i], all[i + 1]
    local p = string.find(f, ':', 1, true)
    if p then
      local k, entry = string.sub(f, 1, p - 1), string.sub(f, p + 1)
      if entry ~= '*' and (k == kind or k == 'archived') then
        local newest = nil
        if agg then
          local raw = redis.call('HGET', gs, entry)
          if raw then newest = cjson.decode(raw).n end
        elseif redis.call('ZSCORE', z, entry) then
          newest = entry
        end
        if newest and newest > w and mark >= newest then
          if k == kind then
            if not marked[entry] then total = total - 1 end
            marked[entry] = true
          elseif not marked[entry] then
            archived[entry] = true
          end
        end
      end
    end
  end
  -- An archived entry counts once it is known not to be marked (fields come in any order).
  for entry in pairs(archived) do
    if not marked[entry] then total = total - 1 end
  end
  return total
end
