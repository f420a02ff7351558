"""Fan-out jobs. Arguments are plain JSON ids; every job is safe to run twice."""

from __future__ import annotations

import time
from typing import Any

from hub.ops import fanout
from hub.storage.activities import minute_bucket
from workers.context import hub_of

# The sweep looks this far back for stored activities whose fan-out was never queued.
SWEEP_MINUTES = 60


async def plan_fanout(ctx: dict[str, Any], app: str, activity_id: str, minute: int) -> int:
    return await fanout.plan(hub_of(ctx), app, activity_id, minute)


async def fanout_chunk(ctx: dict[str, Any], app: str, activity_id: str, followers: list[str]) -> int:
    return await fanout.write_chunk(hub_of(ctx), app, activity_id, followers)


async def remove_activity(ctx: dict[str, Any], app: str, activity_id: str) -> int:
    return await fanout.remove_everywhere(hub_of(ctx), app, activity_id)


async def sweep_pending(ctx: dict[str, Any], *, min_age: float = 20.0) -> int:
    """Queue the fan-out of activities stored more than ``min_age`` seconds ago whose
    fan-out never finished queueing (their pending marker is still there)."""
    hub = hub_of(ctx)
    now = time.time()
    newest = minute_bucket(now - min_age)
    minutes = range(newest - SWEEP_MINUTES, newest + 1)
    queued = 0
    for app in hub.settings.apps:
        for minute, activity_id in await hub.activities.pending(app, minutes):
            if await fanout.enqueue_fanout(hub, app, activity_id, minute):
                queued += 1
    return queued
