"""What every job receives: ``ctx["hub"]``, the settings and open clients of the process."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.config import Settings
from hub.core import Hub
from hub.metrics import HubMetrics
from hub.queue import connect_queue
from hub.storage import redis as redis_storage
from hub.storage.binding import bind_keyspace
from hub.storage.cassandra import Cassandra
from hub.storage.outage import OutageLog
from workers.resilience import outage_log, wait_until


async def open_hub(settings: Settings, metrics: HubMetrics | None = None, *, bind: bool = True) -> Hub:
    """Connect now; raises :class:`~hub.errors.Unavailable` if Cassandra does not answer.
    The Redis clients connect on first use (and reconnect after any outage by themselves).
    ``bind``: check the keyspace guard now (hub/storage/binding.py): raises
    :class:`~hub.storage.binding.KeyspaceConflict` if the key prefix serves another keyspace."""
    db = await Cassandra.connect(settings.cassandra)
    hub = Hub.build(settings, redis_storage.connect(settings.redis), db, await connect_queue(settings), metrics)
    if bind:
        try:
            await bind_keyspace(hub.redis, settings, hub.queue)
        except BaseException:
            await close_hub(hub)
            raise
    return hub


async def wait_for_hub(settings: Settings, stop: asyncio.Event, outage: OutageLog | None = None,
                       metrics: HubMetrics | None = None) -> Hub | None:
    """:func:`open_hub`, retried with backoff while Cassandra is down (a worker may start
    before its dependencies); None if ``stop`` is set first. Then Redis is waited for, as
    long as it takes, to check the keyspace guard before any job is taken (a conflict
    raises :class:`~hub.storage.binding.KeyspaceConflict`); the queue loops wait for
    Redis again whenever it goes (workers/main.py)."""
    c = settings.cassandra
    outage = outage or outage_log(f"Cassandra at {', '.join(c.hosts)}:{c.port}")
    opened: list[Hub] = []

    async def attempt() -> None:
        opened.append(await open_hub(settings, metrics, bind=False))

    if not await wait_until(attempt, outage, stop):
        return None
    hub = opened[0]
    try:
        if await wait_until(lambda: bind_keyspace(hub.redis, settings, hub.queue), outage_log(f"Redis at {settings.redis.url}"), stop):
            return hub
    except BaseException:
        await close_hub(hub)
        raise
    await close_hub(hub)
    return None


async def close_hub(hub: Hub) -> None:
    await hub.queue.aclose()
    await hub.redis.aclose()
    await hub.db.close()


def hub_of(ctx: dict[str, Any]) -> Hub:
    hub = ctx["hub"]
    assert isinstance(hub, Hub)
    return hub
