-- FOLLOW_LOAD: fill a followers set read from Cassandra, unless a change came meanwhile
-- (hub/storage/follows.py).
-- KEYS: the set, its change counter. ARGV: the counter as it was before the read ("" for
-- none), the set's TTL in seconds (fanout.cache_days: a cache of an author nobody has
-- fanned out for that long goes, and the next fan-out loads it again), then the followers
-- read. SADD in slices: Lua's unpack fails past about 8,000 values.
-- Returns 1 if loaded, 0 if the counter moved (nothing written).
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then
  return 0
end
for i = 3, #ARGV, 1000 do
  redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('SADD', KEYS[1], '!')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
