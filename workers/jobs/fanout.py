"""Fan-out jobs. Arguments are plain JSON ids; every job is safe to run twice."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq import Retry

from hub.errors import Unavailable
from hub.ops import fanout
from hub.storage.pending import minute_bucket
from hub.storage.redis import REDIS_DOWN
from workers.context import hub_of

T = TypeVar("T")


def retry_when_down(job: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """A dependency outage or a slow run is not a job failure: run it again, with backoff.

    arq fails a job for good when it exceeds its timeout, so the job body gets a deadline
    a little shorter than that and is retried instead. arq gives up after
    ``worker.max_tries``; jobs are idempotent, so repeats are safe.
    """

    @functools.wraps(job)
    async def wrapper(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> T:
        deadline = hub_of(ctx).settings.worker.job_timeout * 0.8
        try:
            return await asyncio.wait_for(job(ctx, *args, **kwargs), deadline)
        except (Unavailable, asyncio.TimeoutError, *REDIS_DOWN) as e:
            raise Retry(defer=min(2 ** ctx.get("job_try", 1), 30)) from e

    return wrapper

# The sweep looks this far back for stored activities whose fan-out was never queued.
SWEEP_MINUTES = 60


@retry_when_down
async def plan_fanout(ctx: dict[str, Any], app: str, activity_ids: list[str], own_done: bool = False) -> int:
    hub = hub_of(ctx)
    budget = hub.settings.worker.job_timeout * 0.4
    return await fanout.plan_many(hub, app, activity_ids, budget, own_done=own_done)


@retry_when_down
async def fanout_chunk(ctx: dict[str, Any], app: str, activity_id: str, followers: list[str]) -> int:
    return await fanout.write_chunk(hub_of(ctx), app, activity_id, followers)


@retry_when_down
async def remove_activity(ctx: dict[str, Any], app: str, activity_id: str) -> int:
    return await fanout.remove_everywhere(hub_of(ctx), app, activity_id)


@retry_when_down
async def sweep_pending(ctx: dict[str, Any], *, min_age: float = 20.0) -> int:
    """Queue the fan-out of activities stored more than ``min_age`` seconds ago whose
    fan-out never finished queueing (their pending marker is still there)."""
    hub = hub_of(ctx)
    now = time.time()
    newest = minute_bucket(now - min_age)
    minutes = range(newest - SWEEP_MINUTES, newest + 1)
    queued = 0
    for app in hub.settings.apps:
        for batch in await hub.activities.markers.read(app, minutes):
            queued += await fanout.enqueue_fanout(hub, app, batch.ids)
            await hub.activities.markers.swept(app, batch.minute, batch.id)
    return queued
