"""Accepting activities: validate, store durably, queue the fan-out.

An activity is answered 202 only once it is in Cassandra together with its pending
fan-out marker. If queueing the job then fails, the worker's sweep finds the marker and
queues it, so an accepted activity is never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from hub.core import Hub
from hub.domain.activity import ActivityInput
from hub.errors import InvalidActivity, NotFound
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
    return list(await asyncio.gather(*(_accept_one(hub, app, a) for a in inputs)))


async def _accept_one(hub: Hub, app: str, inp: ActivityInput) -> dict[str, str | None]:
    stored = await hub.activities.store(app, inp.with_id(hub.ids.new()))
    activity = stored.activity
    if stored.created:
        try:
            await enqueue_fanout(hub, app, activity.id, minute_bucket())
        except REDIS_DOWN:
            log.warning("%s/%s stored but not queued: the sweep will fan it out", app, activity.id)
    return {"id": activity.id, "foreign_id": activity.foreign_id}


async def delete(hub: Hub, app: str, activity_id: str | None, foreign_id: str | None) -> str:
    if activity_id is None and foreign_id is not None:
        activity_id = await hub.activities.find_by_foreign_id(app, foreign_id)
    activity = await hub.activities.get_one(app, activity_id, include_deleted=True) if activity_id else None
    if activity is None or activity_id is None:
        raise NotFound("no such activity", field="foreign_id" if foreign_id else "id")
    await hub.activities.delete(app, activity)
    await enqueue_remove(hub, app, activity_id)
    return activity_id
