-- CLAIMS_FAIL: a try that failed marks its own pending foreign-id claims failed, and only
-- those: a claim confirmed meanwhile, or another try's, is left as it is; the TTL is kept
-- (hub/storage/foreignids.py).
-- KEYS: the claim keys. ARGV: per key, its pending value then its failed value.
-- Returns 0.
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[2 * i - 1] then
    redis.call('SET', key, ARGV[2 * i], 'KEEPTTL')
  end
end
return 0
