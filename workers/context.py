"""What every job receives in ``ctx["hub"]``: settings and open clients."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis
from redis.asyncio import Redis

from hub.config import Settings
from hub.queue import connect_queue
from hub.storage import redis as redis_storage
from hub.storage.cassandra import Cassandra


@dataclass
class JobContext:
    settings: Settings
    redis: Redis
    cassandra: Cassandra
    queue: ArqRedis

    @classmethod
    async def open(cls, settings: Settings) -> JobContext:
        cassandra = await Cassandra.connect(settings.cassandra)
        return cls(settings, redis_storage.connect(settings.redis), cassandra, await connect_queue(settings.redis))

    async def close(self) -> None:
        await self.queue.aclose()
        await self.redis.aclose()
        await self.cassandra.close()


def hub(ctx: dict[str, object]) -> JobContext:
    jc = ctx["hub"]
    assert isinstance(jc, JobContext)
    return jc
