"""What every job receives: ``ctx["hub"]``, the settings and open clients of the process."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.config import Settings
from hub.core import Hub
from hub.metrics import HubMetrics
from hub.queue import connect_queue
from hub.storage import redis as redis_storage
from hub.storage.cassandra import Cassandra
from workers.resilience import Outage, wait_until


async def open_hub(settings: Settings, metrics: HubMetrics | None = None) -> Hub:
    """Connect now; raises :class:`~hub.errors.Unavailable` if Cassandra does not answer.
    The Redis clients connect on first use (and reconnect after any outage by themselves)."""
    db = await Cassandra.connect(settings.cassandra)
    return Hub.build(settings, redis_storage.connect(settings.redis), db, await connect_queue(settings.redis), metrics)


async def wait_for_hub(settings: Settings, stop: asyncio.Event, outage: Outage | None = None,
                       metrics: HubMetrics | None = None) -> Hub | None:
    """:func:`open_hub`, retried with backoff while Cassandra is down (a worker may start
    before its dependencies); None if ``stop`` is set first. Redis is not waited for here:
    its clients are lazy, and the queue loops wait for it (workers/main.py)."""
    c = settings.cassandra
    outage = outage or Outage(f"Cassandra at {', '.join(c.hosts)}:{c.port}")
    opened: list[Hub] = []

    async def attempt() -> None:
        opened.append(await open_hub(settings, metrics))

    if not await wait_until(attempt, outage, stop):
        return None
    return opened[0]


async def close_hub(hub: Hub) -> None:
    await hub.queue.aclose()
    await hub.redis.aclose()
    await hub.db.close()


def hub_of(ctx: dict[str, Any]) -> Hub:
    hub = ctx["hub"]
    assert isinstance(hub, Hub)
    return hub
