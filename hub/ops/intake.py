"""Accepting activities: validate, store durably, queue the fan-out.

An activity is answered 202 only once it is in Cassandra together with a pending fan-out
marker for its request. Once its fan-out job is queued the marker is deleted; if queueing
fails, the worker's sweep finds the marker and queues the jobs, so an accepted activity
is never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hub.core import Hub
from hub.domain.activity import ActivityInput
from hub.errors import InvalidActivity, NotFound, Unavailable
from hub.ops.fanout import enqueue_fanout, enqueue_remove
from hub.storage.activities import minute_bucket
from hub.storage.redis import REDIS_DOWN

log = logging.getLogger(__name__)


def check_targets(hub: Hub, inputs: Sequence[ActivityInput], batch: bool) -> None:
    for n, a in enumerate(inputs):
        for feed in a.to:
            group = feed.partition(":")[0]
            if group not in hub.settings.feeds:
                # Named by value: ``to`` was de-duplicated, so indexes may not match the body.
                where = f"activities[{n}].to" if batch else "to"
                raise InvalidActivity(f"no feed group {group!r} (in {feed!r})", field=where)


async def accept(hub: Hub, app: str, inputs: Sequence[ActivityInput], *, batch: bool) -> list[dict[str, str | None]]:
    check_targets(hub, inputs, batch)
    minute = minute_bucket()  # the pending marker's partition, which the job deletes
    stored = await hub.activities.store_many(app, [a.with_id(hub.ids.new()) for a in inputs], minute=minute)
    created = [s.activity.id for s in stored if s.created]
    if created:
        try:
            await enqueue_fanout(hub, app, created)
        except REDIS_DOWN:
            log.warning("%s: %d activities stored but not queued: the sweep will fan them out", app, len(created))
        else:
            try:
                await hub.activities.fanout_queued(app, minute, min(created))
            except Unavailable:  # stored and queued: the sweep re-queues it, harmlessly
                log.warning("%s: pending marker %s not cleared", app, min(created))
    return [{"id": s.activity.id, "foreign_id": s.activity.foreign_id} for s in stored]


async def delete(hub: Hub, app: str, activity_id: str | None, foreign_id: str | None) -> str:
    if activity_id is None and foreign_id is not None:
        activity_id = await hub.activities.find_by_foreign_id(app, foreign_id)
    activity = await hub.activities.get_one(app, activity_id, include_deleted=True) if activity_id else None
    if activity is None or activity_id is None:
        raise NotFound("no such activity", field="foreign_id" if foreign_id else "id")
    await hub.activities.delete(app, activity)
    await enqueue_remove(hub, app, activity_id)
    return activity_id
