-- RECORD: keep a signed call's answer for repeats (web/gate.py).
-- KEYS: the replay key. ARGV: the answer, its TTL in seconds.
-- Returns 1.
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
