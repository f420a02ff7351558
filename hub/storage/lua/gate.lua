-- GATE: admission of a signed call (web/gate.py): replay, rate limit (token bucket), the
-- call's claims; and whether Redis holds every answer given since it was last checked.
-- KEYS: replay key, bucket, complete-since key, then the call's claim keys.
-- ARGV: rate/s, burst, now, TTL of the webhook-id claim (while running), TTL of the call's
-- claims, checked, REPLAY_TTL, then the claims' values.
-- Returns {0, found...} (go on; what each claim key held, nil where the call got it),
-- {1, record} (a repeat), {2, retry-after seconds}, {3} (Redis may have lost answers: the
-- caller finds out) or {4} (it may have, within REPLAY_TTL: check the durable record).
local prior = redis.call('GET', KEYS[1])
if prior then return {1, prior} end
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[6] ~= '1' then
  local since = tonumber(redis.call('GET', KEYS[3]))
  if not since then return {3} end
  if now - since < tonumber(ARGV[7]) then return {4} end
end
local b = redis.call('HMGET', KEYS[2], 't', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
if tokens < 1 then
  redis.call('HSET', KEYS[2], 't', tokens, 'ts', now)
  return {2, math.ceil((1 - tokens) / rate)}
end
redis.call('HSET', KEYS[2], 't', tokens - 1, 'ts', now)
redis.call('EXPIRE', KEYS[2], math.ceil(burst / rate) + 60)
redis.call('SET', KEYS[1], '', 'EX', ARGV[4])
local out = {0}
for i = 4, #KEYS do
  out[i - 2] = redis.call('SET', KEYS[i], ARGV[i + 4], 'NX', 'GET', 'EX', ARGV[5])
end
return out
