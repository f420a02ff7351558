"""The Redis side of signed calls: admission (replay, rate limit) and the kept answer."""

from __future__ import annotations

from redis.asyncio import Redis

from hub.storage.scriptbatch import ScriptBatch

# One round trip per signed call: a known webhook-id gets its first answer back (or "" while
# that first try still runs) without costing a token; otherwise the app's token bucket is
# charged and, when a token was left, the webhook-id is claimed.
# KEYS: replay key, bucket. ARGV: rate/s, burst, now, replay TTL.
# Returns {0} (go on), {1, record} (a repeat), or {2, retry-after seconds}.
_GATE = """
local prior = redis.call('GET', KEYS[1])
if prior then return {1, prior} end
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
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
return {0}
"""
_RECORD = "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1"


class SignedScripts:
    """The two Redis calls of every signed request, each batched with the same call of the
    requests handled in the same event-loop turn (hub/storage/scriptbatch.py): the
    requests of one group commit are answered together, so their records go together."""

    def __init__(self, redis: Redis) -> None:
        self.gate = ScriptBatch(redis, redis.register_script(_GATE))
        self.record = ScriptBatch(redis, redis.register_script(_RECORD))
