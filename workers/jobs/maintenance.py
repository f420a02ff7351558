"""Small jobs: a round-trip check used by tests and operators; the failover check."""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from hub.storage import failover
from hub.storage.outage import DEPENDENCY_DOWN
from workers.context import hub_of


async def ping(ctx: dict[str, Any], value: str) -> dict[str, Any]:
    """Echo ``value`` with the try number: proves a worker consumes the queue end to end."""
    return {"pong": value, "try": ctx["job_try"]}


async def redis_failover(ctx: dict[str, Any]) -> int:
    """On a Redis Cluster: drop this hub's keys in slots whose primary changed since the
    last check (hub/storage/failover.py); the keys deleted. Runs every few seconds; a
    check that meets an outage is simply the next one's to do."""
    hub = hub_of(ctx)
    if not isinstance(hub.redis, RedisCluster):
        return 0
    try:
        return await failover.check(hub.redis, hub.queue, hub.settings.redis.key_prefix)
    except DEPENDENCY_DOWN:
        return 0
