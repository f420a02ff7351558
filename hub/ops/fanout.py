"""Fan-out on write: plan per activity, write per chunk of followers.

Guarantees (docs/api.md, Guarantees): every step is idempotent (feed adds are set adds, job
ids are deterministic), so a worker killed at any point is recovered by re-running the
interrupted job: no entry is lost and none is duplicated. Authors above the celebrity
threshold are not fanned out; readers pull their activities.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from hub.config import FeedGroup
from hub.core import Hub
from hub.domain.ids import id_time_ms, is_valid_id
from hub.domain.models import Activity
from hub.queue import FANOUT, FANOUT_CHUNK, HIGH, LOW, QUEUED, REMOVE, queue_name
from hub.storage.pending import MarkerRef
from hub.storage.trip import Trip

log = logging.getLogger(__name__)

# A try writes its rows within a few Cassandra timeouts of its marker (or fails). A marker
# naming ids still not stored after this long names tries that failed (answered 503): it
# is dropped; their retries, if any, write markers of their own.
SETTLED_S = 300.0


def chunks(users: Sequence[str], size: int) -> list[list[str]]:
    return [list(users[i : i + size]) for i in range(0, len(users), size)]


async def enqueue_fanout(
    hub: Hub, app: str, activity_ids: Sequence[str], *, own_done: bool = False, marker: MarkerRef | None = None,
    job_id: str | None = None, again: bool = False,
) -> bool:
    """Queue one job that plans the fan-out of these activities (one group's worth);
    False if a job with its id is already queued (or, unless ``again``, has just run).

    One job per group rather than per activity: the queue's own cost (about a
    millisecond of worker CPU per job) was the largest part of intake's worker load.
    ``own_done`` says the own and addressed feeds are already written (intake does that
    before queueing), so the job only fans out to followers. ``marker``: the pending
    marker the job drops once the fan-out is certain (see :func:`plan_many`).
    """
    trip = Trip(hub.redis)
    queued = queue_fanout(hub, trip, app, activity_ids, own_done=own_done, marker=marker, job_id=job_id, again=again)
    return bool((await trip.execute())[queued] == QUEUED)


def marker_age(name: str) -> float:
    """Seconds since the try that named a marker made its ids (a name that is no id, as
    an older hub could write, counts as old)."""
    return time.time() - id_time_ms(name) / 1000 if is_valid_id(name) else float("inf")


def fanout_job_id(app: str, activity_ids: Sequence[str], marker: MarkerRef | None) -> str:
    """The planning job of a marker is named after it (its name is unique to the try that
    wrote it, hub/storage/pending.py), so a re-queue by the sweep finds the one intake
    queued; a job without a marker is named after its first activity."""
    return f"fanout:{app}:{marker.id if marker is not None else min(activity_ids)}"


def queue_fanout(
    hub: Hub, trip: Trip, app: str, activity_ids: Sequence[str], *, own_done: bool = False,
    authors: Sequence[str] = (), marker: MarkerRef | None = None, job_id: str | None = None, again: bool = False,
) -> int:
    """:func:`enqueue_fanout` as part of ``trip``; returns the index of its answer.

    ``authors``, given with ``own_done``: the job is not queued when the follower caches
    say none of them has a follower, since all it would do is find that out. A follow
    that lands after the check finds these activities as it finds any earlier ones,
    with its copy: it adds to the cache before it reads the followee's activities
    (hub/ops/follow.py).
    """
    ids = sorted(activity_ids)
    skip_if = hub.follows.have_none(app, sorted(set(authors))) if own_done and authors else None
    return hub.jobs.queue(trip, FANOUT, app, ids, own_done, marker.to_json() if marker is not None else None,
                          job_id=job_id or fanout_job_id(app, ids, marker),
                          queue=queue_name(hub.settings.redis, HIGH), skip_if=skip_if, again=again)


async def write_own_feeds(hub: Hub, app: str, activities: Sequence[Activity]) -> int:
    """``user:<actor>`` and the ``to`` feeds of these activities, in one round trip.

    Idempotent like every feed write. Intake does this as part of its last round trip
    (:func:`queue_own_feeds`) before answering, so an addressed notification is in its
    feed (and on its way to connected sockets) without waiting for a worker.
    """
    return await hub.feeds.add_many(app, [item for a in activities for item in _own_feed_adds(hub, a)])


def queue_own_feeds(hub: Hub, trip: Trip, app: str, activities: Sequence[Activity]) -> None:
    hub.feeds.queue_adds(trip, app, [item for a in activities for item in _own_feed_adds(hub, a)])


async def plan_many(
    hub: Hub, app: str, activity_ids: Sequence[str], budget: float, *, own_done: bool = False,
    marker: MarkerRef | None = None,
) -> int:
    """Plan a request's activities: own and addressed feeds first, for all of them in one
    round trip, then follower chunks activity by activity. Past ``budget`` seconds the
    rest is queued as a new job, which keeps each job well inside its timeout however
    many followers the authors have. A crash before that re-runs this job (plans are
    idempotent). Returns the number of chunk jobs queued.

    ``marker``: the pending marker of these activities. It is dropped once every chunk
    job is queued (by the continuation, if there is one), and only if every activity was
    found stored (alive or deleted): an id not stored yet may belong to a try still
    writing its rows, so its marker stays for the sweep until it is :data:`SETTLED_S`
    old. Deleted activities are skipped.
    """
    started = time.monotonic()
    bodies, deleted = await hub.activities.lookup(app, activity_ids)
    activities = [bodies[i] for i in activity_ids if i in bodies]
    absent = [i for i in activity_ids if i not in bodies and i not in deleted]
    if not own_done:
        await write_own_feeds(hub, app, activities)
    followers = await hub.follows.followers_many(app, sorted({a.actor for a in activities}))
    queued = 0
    for n, activity in enumerate(activities):
        if n and time.monotonic() - started > budget:
            rest = [a.id for a in activities[n:]] + absent
            # Named after this job and where it stops, so a re-run of this job finds it.
            job_id = f"{fanout_job_id(app, activity_ids, marker)}:{rest[0]}"
            await enqueue_fanout(hub, app, rest, own_done=True, marker=marker, job_id=job_id)
            return queued
        queued += await _queue_chunks(hub, app, activity, followers[activity.actor])
    if marker is not None:
        if absent and marker_age(marker.id) < SETTLED_S:
            log.info("%s: %s not stored yet; marker %s kept for the sweep", app, ", ".join(absent), marker.id)
        else:
            await hub.activities.markers.done(app, marker)
    return queued
async def plan(hub: Hub, app: str, activity_id: str) -> int:
    """Plan one activity (see :func:`plan_many`)."""
    return await plan_many(hub, app, [activity_id], budget=float("inf"))


def _own_feed_adds(hub: Hub, activity: Activity) -> list[tuple[FeedGroup, list[str], Activity]]:
    """``user:<actor>`` and the ``to`` feeds, grouped by feed group."""
    by_group: dict[str, list[str]] = {}
    for f in (f"user:{activity.actor}", *activity.to):
        by_group.setdefault(f.partition(":")[0], []).append(f)
    return [(hub.settings.feeds[g], fs, activity) for g, fs in by_group.items() if g in hub.settings.feeds]


async def _queue_chunks(hub: Hub, app: str, activity: Activity, followers: Sequence[str]) -> int:
    if len(followers) > hub.settings.fanout.celebrity_threshold:
        await hub.follows.mark_celebrity(app, activity.actor, len(followers))
        log.info("%s/%s: %s has %d followers, pulled at read time", app, activity.id, activity.actor, len(followers))
        return 0
    if not followers or not hub.settings.follower_groups("user"):
        return 0
    active_since = time.time() - hub.settings.fanout.active_days * 86400
    active, inactive = await hub.follows.split_by_activity(app, followers, active_since)
    size = hub.settings.fanout.chunk_size
    plan = [(priority, n, chunk) for priority, users in ((HIGH, active), (LOW, inactive))
            for n, chunk in enumerate(chunks(sorted(users), size))]
    # Each chunk job is told how many chunks the activity has: the worker that finishes the
    # last one observes the fan-out lag (workers/jobs/fanout.py).
    jobs = [
        hub.queue.enqueue_job(
            FANOUT_CHUNK, app, activity.id, chunk, len(plan),
            _job_id=f"chunk:{app}:{activity.id}:{priority}:{n}",
            _queue_name=queue_name(hub.settings.redis, priority),
        )
        for priority, n, chunk in plan
    ]
    # Queued concurrently: one round trip's latency for all chunks, not one each.
    await asyncio.gather(*jobs)
    return len(jobs)


async def write_chunk(hub: Hub, app: str, activity_id: str, followers: Sequence[str]) -> int:
    activity = await hub.activities.get_one(app, activity_id)
    if activity is None:
        return 0
    written = 0
    for group in hub.settings.follower_groups("user"):
        n = await hub.feeds.add(app, group, [group.feed_of(u) for u in followers], activity)
        hub.metrics.fanout_entries.labels(group.name).inc(n)
        written += n
    return written


async def forget_chunk(hub: Hub, app: str, followers: Sequence[str]) -> None:
    """Take the feeds a chunk writes out of the cache: read next, they are rebuilt from
    Cassandra, which holds the activity. For a chunk that cannot be written (a bug, not an
    outage): its activity then reaches those feeds late rather than never."""
    await hub.feeds.drop_many(app, [g.feed_of(u) for g in hub.settings.follower_groups("user") for u in followers])


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
            removed += await hub.feeds.remove(app, group, [group.feed_of(u) for u in chunk], activity)
    return removed
