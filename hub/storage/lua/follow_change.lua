-- FOLLOW_CHANGE: apply a follow or unfollow to a loaded followers set (hub/storage/follows.py).
-- KEYS: the set, its change counter. ARGV: "add" or "remove", the follower, the counter's TTL.
-- Returns SREM's/SADD's answer, or -1 when the set is not loaded (nothing added).
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if ARGV[1] == 'remove' then
  return redis.call('SREM', KEYS[1], ARGV[2])
end
if redis.call('SISMEMBER', KEYS[1], '!') == 1 then
  return redis.call('SADD', KEYS[1], ARGV[2])
end
return -1
