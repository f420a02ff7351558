"""Fan-out on write: plan per activity, write per chunk of followers.

Guarantees (contract section 6): every step is idempotent (feed adds are set adds, job
ids are deterministic), so a worker killed at any point is recovered by re-running the
interrupted job: no entry is lost and none is duplicated. Authors above the celebrity
threshold are not fanned out; readers pull their activities.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from hub.core import Hub
from hub.domain.models import Activity
from hub.queue import FANOUT, FANOUT_CHUNK, HIGH, LOW, REMOVE, queue_name

log = logging.getLogger(__name__)


def chunks(users: Sequence[str], size: int) -> list[list[str]]:
    return [list(users[i : i + size]) for i in range(0, len(users), size)]


async def enqueue_fanout(hub: Hub, app: str, activity_ids: Sequence[str]) -> bool:
    """Queue one job that plans the fan-out of these activities (one request's worth).

    One job per request rather than per activity: the queue's own cost (about a
    millisecond of worker CPU per job) was the largest part of intake's worker load.
    """
    ids = sorted(activity_ids)
    job = await hub.queue.enqueue_job(
        FANOUT, app, ids, _job_id=f"fanout:{app}:{ids[0]}", _queue_name=queue_name(hub.settings.redis, HIGH),
    )
    return job is not None


async def plan_many(hub: Hub, app: str, activity_ids: Sequence[str], budget: float) -> int:
    """Plan activities in order; past ``budget`` seconds, queue the rest as a new job.

    The continuation keeps each job well inside its timeout however many followers the
    authors have. A crash before it is queued re-runs this job (plans are idempotent).
    """
    started = time.monotonic()
    queued = 0
    for n, activity_id in enumerate(activity_ids):
        if n and time.monotonic() - started > budget:
            await enqueue_fanout(hub, app, activity_ids[n:])
            break
        queued += await plan(hub, app, activity_id)
    return queued


async def plan(hub: Hub, app: str, activity_id: str) -> int:
    """Write the activity into its own and addressed feeds, queue follower chunks.

    Returns the number of chunk jobs queued (0 for a celebrity or an unknown activity).
    """
    activity = await hub.activities.get_one(app, activity_id)
    if activity is None:  # deleted before its fan-out ran
        return 0
    await add_to_feeds(hub, app, activity, [f"user:{activity.actor}", *activity.to])
    followers = await hub.follows.followers(app, activity.actor)
    queued = 0
    if len(followers) > hub.settings.fanout.celebrity_threshold:
        await hub.follows.mark_celebrity(app, activity.actor, len(followers))
        log.info("%s/%s: %s has %d followers, pulled at read time", app, activity_id, activity.actor, len(followers))
    elif followers and hub.settings.follower_groups("user"):
        active_since = time.time() - hub.settings.fanout.active_days * 86400
        active, inactive = await hub.follows.split_by_activity(app, followers, active_since)
        size = hub.settings.fanout.chunk_size
        jobs = [
            hub.queue.enqueue_job(
                FANOUT_CHUNK, app, activity_id, chunk,
                _job_id=f"chunk:{app}:{activity_id}:{priority}:{n}",
                _queue_name=queue_name(hub.settings.redis, priority),
            )
            for priority, users in ((HIGH, active), (LOW, inactive))
            for n, chunk in enumerate(chunks(sorted(users), size))
        ]
        # Queued concurrently: one round trip's latency for all chunks, not one each.
        await asyncio.gather(*jobs)
        queued = len(jobs)
    return queued


async def write_chunk(hub: Hub, app: str, activity_id: str, followers: Sequence[str]) -> int:
    activity = await hub.activities.get_one(app, activity_id)
    if activity is None:
        return 0
    written = 0
    for group in hub.settings.follower_groups("user"):
        written += await hub.feeds.add(app, group, [f"{group.name}:{u}" for u in followers], activity)
    return written


async def add_to_feeds(hub: Hub, app: str, activity: Activity, feeds: Sequence[str]) -> int:
    """Add to named feeds of any groups (one script call per group)."""
    by_group: dict[str, list[str]] = {}
    for f in feeds:
        group, _, user = f.partition(":")
        by_group.setdefault(group, []).append(f)
    written = 0
    for name, fs in by_group.items():
        group = hub.settings.feeds.get(name)
        if group is not None:
            written += await hub.feeds.add(app, group, fs, activity)
    return written


async def enqueue_remove(hub: Hub, app: str, activity_id: str) -> None:
    await hub.queue.enqueue_job(
        REMOVE, app, activity_id, _job_id=f"remove:{app}:{activity_id}",
        _queue_name=queue_name(hub.settings.redis, HIGH),
    )


async def remove_everywhere(hub: Hub, app: str, activity_id: str) -> int:
    """Take a deleted activity out of every cached feed it reached."""
    activity = await hub.activities.get_one(app, activity_id, include_deleted=True)
    if activity is None:
        return 0
    removed = 0
    own = [f"user:{activity.actor}", *activity.to]
    for f in own:
        group = hub.settings.feeds.get(f.partition(":")[0])
        if group is not None:
            removed += await hub.feeds.remove(app, group, [f], activity)
    followers = await hub.follows.followers(app, activity.actor)
    for chunk in chunks(sorted(followers), hub.settings.fanout.chunk_size):
        for group in hub.settings.follower_groups("user"):
            removed += await hub.feeds.remove(app, group, [f"{group.name}:{u}" for u in chunk], activity)
    return removed
