"""The Redis side of signed calls: admission (replay, rate limit) and the kept answer.

The answers are also kept in Cassandra (hub/storage/answers.py), which the gate sends a
call to check when Redis may have lost them (web/signed.py)."""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from hub.background import Background
from hub.storage import scripts
from hub.storage.outage import OutageLog
from hub.storage.redis import REDIS_DOWN
from hub.storage.scriptbatch import ScriptBatch

log = logging.getLogger(__name__)

# One round trip per signed call: a known webhook-id gets its first answer back (or "" while
# that first try still runs) without costing a token; otherwise the app's token bucket is
# charged and, when a token was left, the webhook-id is claimed.
# An admitted call's own claims go in the same trip (web/signed.py, Prepared).
# Unless ARGV[6] is '1' (the durable record was checked), a webhook-id Redis does not know
# is new only if Redis holds every answer of the last REPLAY_TTL seconds: KEYS[3] says
# since when it does (set by the caller once it knows, never expiring). Missing: Redis
# lost its data (flush, restart) or never had any; too recent: it may have lost answers.
# The gate's KEYS, ARGV and answers: hub/storage/lua/gate.lua.
UNKNOWN, RECENT = 3, 4  # the gate's answers that send a call to check Cassandra


class SignedScripts:
    """The two Redis calls of every signed request, each batched with the same call of the
    requests handled in the same event-loop turn (hub/storage/scriptbatch.py): the
    requests of one group commit are answered together, so their records go together."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.gate = ScriptBatch(redis, redis.register_script(scripts.GATE))
        self.touched: dict[str, float] = {}  # hub/storage/answers.py WebhookAnswers
        self.answers_down = OutageLog("Cassandra (webhook answers)", log)  # web/signed.py
        self._record = ScriptBatch(redis, redis.register_script(scripts.RECORD))
        self._keeping = Background()

    async def complete_since(self, key: str, since: float) -> None:
        """Redis holds every answer given since ``since`` (unless another process said
        so first): the gate's KEYS[3]."""
        await self._redis.set(key, repr(since), nx=True)

    def keep(self, key: str, record: str, ttl: int) -> None:
        """Keep an answer for repeats, while it is being sent rather than before: a
        repeat arriving in between finds the claim and waits for the record. If Redis
        fails now the claim expires on its own (the gate's short TTL) and a repeat is
        run again, as after a crash."""
        self._keeping.spawn(self._keep(key, record, ttl))

    async def _keep(self, key: str, record: str, ttl: int) -> None:
        try:
            await self._record([key], [record, ttl])
        except REDIS_DOWN as e:
            log.warning("answer to %s not kept for repeats: %s", key, e)

    async def close(self) -> None:
        """Wait for the answers still being kept (server shutdown)."""
        await self._keeping.close()
