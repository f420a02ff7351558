-- RANK_PAGE: one page of a ranked flat feed (hub/storage/rankindex.py).
-- KEYS: feed order set, rank index. ARGV: limit, then the cursor's score and id (or
-- nothing for the first page). Returns a flat list id, score, id, score... in feed order
-- (score, then id, descending), of ids the feed still holds.
local f, r, limit = KEYS[1], KEYS[2], tonumber(ARGV[1])
local out, n = {}, 0
local top = '+inf'
local function take(m, s)
  if redis.call('ZSCORE', f, m) then
    out[#out + 1] = m
    out[#out + 1] = s
    n = n + 1
  end
  return n >= limit
end
if ARGV[2] then
  local ties = redis.call('ZRANGEBYSCORE', r, ARGV[2], ARGV[2], 'WITHSCORES')
  for i = #ties - 1, 1, -2 do
    if ties[i] < ARGV[3] and take(ties[i], ties[i + 1]) then return out end
  end
  top = '(' .. ARGV[2]
end
local offset = 0
while n < limit do
  local batch = redis.call('ZREVRANGEBYSCORE', r, top, '-inf', 'WITHSCORES', 'LIMIT', offset, 2 * limit)
  if #batch == 0 then break end
  for i = 1, #batch, 2 do
    if take(batch[i], batch[i + 1]) then return out end
  end
  offset = offset + #batch / 2
end
return out
