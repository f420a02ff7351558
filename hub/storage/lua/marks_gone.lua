-- MARKS_GONE: the individual marks of entries no longer in the feed (trimmed out, emptied
-- or deleted), so that marks.py can drop them and the marks stay bounded by the feed.
-- KEYS: built flag, order set, group states (aggregated) or the order set again, marks
-- hash. ARGV: aggregated flag ("1" or "0").
-- Returns the hash fields ("<kind>:<entry>") to drop; none unless the feed is built (its
-- flag is set once a rebuild has filled it) and the marks are loaded, so a feed being
-- rebuilt or lost never looks empty here.
local z, gs, mk = KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', KEYS[1]) == 0 or not redis.call('ZSCORE', z, '!') then return {} end
if redis.call('HEXISTS', mk, '!') == 0 then return {} end
local agg = ARGV[1] == '1'
local gone = {}
for _, f in ipairs(redis.call('HKEYS', mk)) do
  local p = string.find(f, ':', 1, true)
  if p then
    local entry = string.sub(f, p + 1)
    if entry ~= '*' then
      local held
      if agg then held = redis.call('HEXISTS', gs, entry) == 1 else held = redis.call('ZSCORE', z, entry) end
      if not held then gone[#gone + 1] = f end
    end
  end
end
return gone
