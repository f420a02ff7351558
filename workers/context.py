"""What every job receives: ``ctx["hub"]``, the settings and open clients of the process."""

from __future__ import annotations

from typing import Any

from hub.config import Settings
from hub.core import Hub
from hub.queue import connect_queue
from hub.storage import redis as redis_storage
from hub.storage.cassandra import Cassandra


async def open_hub(settings: Settings) -> Hub:
    db = await Cassandra.connect(settings.cassandra)
    return Hub.build(settings, redis_storage.connect(settings.redis), db, await connect_queue(settings.redis))


async def close_hub(hub: Hub) -> None:
    await hub.queue.aclose()
    await hub.redis.aclose()
    await hub.db.close()


def hub_of(ctx: dict[str, Any]) -> Hub:
    hub = ctx["hub"]
    assert isinstance(hub, Hub)
    return hub
