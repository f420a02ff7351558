"""Fan-out jobs. Arguments are plain JSON ids; every job is safe to run twice."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq import Retry
from arq.constants import retry_key_prefix

from hub.core import Hub
from hub.domain.ids import id_time_ms, is_valid_id
from hub.ops import fanout
from hub.queue import QUEUED
from hub.storage.pending import MarkerRef, minute_bucket
from hub.storage.trip import Trip
from workers.context import hub_of
from workers.resilience import is_dependency_error

T = TypeVar("T")


def retry_when_down(job: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """A dependency outage or a slow run is not a job failure: run it again, with backoff.

    Every error that means "Redis or Cassandra is down or busy" counts
    (workers/resilience.py ``is_dependency_error``); anything else is a bug and fails the
    job. arq fails a job for good when it exceeds its timeout, so the job body gets a
    deadline a little shorter than that and is retried instead. Retries wait 2, 4, 8, 16,
    then 30 s (:func:`retry_delay`). arq gives up after ``worker.max_tries`` runs (the
    default 20 ride out about 8 minutes, :func:`retry_budget`); a job that is still
    meeting an outage on its last tries gets them back, for up to ``OUTAGE_RETRY_S``
    after it was queued. Jobs are idempotent, so repeats are safe.
    """

    @functools.wraps(job)
    async def wrapper(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> T:
        deadline = hub_of(ctx).settings.worker.job_timeout * 0.8
        try:
            return await asyncio.wait_for(job(ctx, *args, **kwargs), deadline)
        except Exception as e:
            if not is_dependency_error(e):
                raise
            hub_of(ctx).metrics.dependency_error(e)
            await _give_tries_back(ctx)
            raise Retry(defer=retry_delay(ctx.get("job_try", 1))) from e

    return wrapper


RETRY_CAP_S = 30.0
# How long after it was queued a job keeps being retried through an outage: an hour, the
# sweep's window (SWEEP_MINUTES). A fan-out chunk failed for good would be lost from
# cached feeds (no marker names it any more), so its tries must not run out first.
OUTAGE_RETRY_S = 3600.0


def retry_delay(job_try: int) -> float:
    """Seconds before the next run of a job whose run number ``job_try`` met an outage."""
    return min(2.0 ** min(job_try, 16), RETRY_CAP_S)


def retry_budget(max_tries: int) -> float:
    """How long (waits only) ``max_tries`` runs last through an outage."""
    return sum(retry_delay(t) for t in range(1, max_tries))


async def _give_tries_back(ctx: dict[str, Any]) -> None:
    """On a job's last tries, reset arq's count of them (its ``arq:retry:<job id>`` key,
    incremented at each run) unless the job was queued more than OUTAGE_RETRY_S ago. If
    Redis is what is down the reset fails, harmlessly: arq cannot run the job either."""
    hub = hub_of(ctx)
    job_id, job_try, queued = ctx.get("job_id"), ctx.get("job_try", 1), ctx.get("enqueue_time")
    if job_id is None or queued is None or job_try < hub.settings.worker.max_tries - 1:
        return
    if time.time() - queued.timestamp() > OUTAGE_RETRY_S:
        return
    with contextlib.suppress(Exception):
        await hub.queue.set(retry_key_prefix + job_id, 1, ex=88400)  # arq's own expiry for it


# The sweep looks this far back for stored activities whose fan-out was never queued.
SWEEP_MINUTES = 60


@retry_when_down
async def plan_fanout(
    ctx: dict[str, Any], app: str, activity_ids: list[str], own_done: bool = False, marker: list[Any] | None = None
) -> int:
    """Plan, then drop the pending marker (``[minute, id, row]``) once the fan-out is certain."""
    hub = hub_of(ctx)
    budget = hub.settings.worker.job_timeout * 0.4
    return await fanout.plan_many(hub, app, activity_ids, budget, own_done=own_done, marker=MarkerRef.from_json(marker))


@retry_when_down
async def fanout_chunk(ctx: dict[str, Any], app: str, activity_id: str, followers: list[str], chunks: int = 1) -> int:
    """Write one chunk of an activity's followers; ``chunks``: how many the activity has
    (jobs queued before it was passed count as one each)."""
    hub = hub_of(ctx)
    try:
        written = await fanout.write_chunk(hub, app, activity_id, followers)
    except Exception as e:
        if not is_dependency_error(e):
            # A bug, not an outage: the job fails for good (retry_when_down), and no pending
            # marker names the activity any more. The chunk's feeds leave the cache so that
            # they rebuild from Cassandra with it. If that fails too, Redis is down: retried.
            await fanout.forget_chunk(hub, app, followers)
        raise
    await _observe_lag(hub, app, activity_id, str(ctx.get("job_id", "")), chunks)
    return written


# Chunks done of one activity are counted this long; a fan-out slower than that (an
# outage) is not observed.
LAG_COUNT_TTL_S = 3600


async def _observe_lag(hub: Hub, app: str, activity_id: str, job_id: str, chunks: int) -> None:
    """``hub_fanout_lag_seconds``: the activity's id holds its accept time (ids are made
    at intake), observed when its last chunk is written. One chunk (the usual case) is
    the last: observed at once, no Redis. With several, which may run in any order on
    any worker, each adds its job id to a set in Redis (one round trip): the one that
    completes the set observes. Re-runs add nothing, so a fan-out is observed once."""
    if not is_valid_id(activity_id):
        return
    if chunks > 1:
        key = f"{hub.settings.redis.key_prefix}:lag:{app}:{activity_id}"
        try:
            async with hub.redis.pipeline(transaction=True) as p:
                p.sadd(key, job_id)
                p.scard(key)
                p.expire(key, LAG_COUNT_TTL_S)
                added, done, _ = await p.execute()
        except Exception as e:  # a metric is not worth a retry of the chunk
            hub.metrics.dependency_error(e)
            return
        if not added or done < chunks:
            return
    hub.metrics.fanout_lag.observe(max(0.0, time.time() - id_time_ms(activity_id) / 1000))


@retry_when_down
async def remove_activity(ctx: dict[str, Any], app: str, activity_id: str) -> int:
    return await fanout.remove_everywhere(hub_of(ctx), app, activity_id)


@retry_when_down
async def sweep_pending(ctx: dict[str, Any], *, min_age: float = 20.0) -> int:
    """Queue again the fan-out of every stored activity whose fan-out is not certain: each
    pending marker named at least ``min_age`` seconds ago whose planning job is neither
    queued nor running. A job of that name that already ran (its result kept) does not
    stop it: the marker is still there, so that run did not make the fan-out certain.
    Markers stay; the job drops each once its fan-out is certain. One Redis round trip
    per app."""
    hub = hub_of(ctx)
    newest = minute_bucket(time.time() - min_age)
    minutes = range(newest - SWEEP_MINUTES, newest + 1)
    queued = 0
    for app in hub.settings.apps:
        await hub.follows.trim_active(app, time.time() - hub.settings.fanout.active_days * 86400)
        due = [b for b in await hub.activities.markers.read(app, minutes) if fanout.marker_age(b.id) >= min_age]
        if not due:
            continue
        trip = Trip(hub.redis)
        answers = [fanout.queue_fanout(hub, trip, app, b.ids, marker=b.ref, again=True) for b in due]
        done = await trip.execute()
        queued += sum(done[i] == QUEUED for i in answers)
    return queued
