"""Accepting activities: validate, store durably, queue the fan-out.

An activity is answered 202 only once it is in Cassandra together with a pending fan-out
marker for its group. Once its fan-out job is queued the marker is deleted; if queueing
fails, the worker's sweep finds the marker and queues the jobs, so an accepted activity
is never lost.

In ``hub serve`` the requests of one app that arrive together are committed as one group
(:class:`Intake`, hub/ops/groupcommit.py): one foreign-id read, one marker and one fan-out
job for all of them, so the work per activity falls as the load rises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hub.background import Background
from hub.core import Hub
from hub.domain.activity import ActivityInput
from hub.domain.models import Activity
from hub.errors import InvalidActivity, NotFound, Unavailable
from hub.ops.fanout import enqueue_remove, queue_fanout, queue_own_feeds
from hub.ops.groupcommit import GroupCommit
from hub.storage.activities import Stored, StoreResult
from hub.storage.redis import REDIS_DOWN
from hub.storage.trip import Trip

log = logging.getLogger(__name__)

# Activities per group: one Cassandra batch each, all in flight at once, and a planning
# job that stays well inside its time budget.
MAX_GROUP = 500
# Groups of one app written at the same time: while one waits on Cassandra the next is
# already being gathered and sent, so a request rarely waits behind a whole group.
GROUP_CONCURRENCY = 2


def check_targets(hub: Hub, inputs: Sequence[ActivityInput], batch: bool) -> None:
    for n, a in enumerate(inputs):
        for feed in a.to:
            group = feed.partition(":")[0]
            if group not in hub.settings.feeds:
                # Named by value: ``to`` was de-duplicated, so indexes may not match the body.
                where = f"activities[{n}].to" if batch else "to"
                raise InvalidActivity(f"no feed group {group!r} (in {feed!r})", field=where)


class Intake:
    """Accepting activities in one server process: concurrent requests share commits.

    The pending markers of a committed group are dropped after the answers go out: a
    marker left behind by a crash only makes the sweep queue an idempotent fan-out again.
    """

    def __init__(self, hub: Hub, *, max_group: int = MAX_GROUP) -> None:
        self.hub = hub
        self.groups: GroupCommit[str, Activity, Stored] = GroupCommit(
            self._commit, max_items=max_group, concurrency=GROUP_CONCURRENCY
        )
        self._cleanups = Background()  # pending markers dropped after the answers

    async def accept(self, app: str, inputs: Sequence[ActivityInput], *, batch: bool) -> list[dict[str, str | None]]:
        check_targets(self.hub, inputs, batch)
        stored = await self.groups.submit(app, [a.with_id(self.hub.ids.new()) for a in inputs])
        return _answer(stored)

    async def close(self) -> None:
        await self._cleanups.close()

    async def _commit(self, app: str, activities: list[Activity]) -> list[Stored]:
        result, queued = await commit(self.hub, app, activities)
        if queued:
            self._cleanups.spawn(drop_markers(self.hub, app, result))
        return result.stored


async def accept(hub: Hub, app: str, inputs: Sequence[ActivityInput], *, batch: bool) -> list[dict[str, str | None]]:
    """One request on its own (no grouping): tests and tools."""
    check_targets(hub, inputs, batch)
    result, queued = await commit(hub, app, [a.with_id(hub.ids.new()) for a in inputs])
    if queued:
        await drop_markers(hub, app, result)
    return _answer(result.stored)


def _answer(stored: Sequence[Stored]) -> list[dict[str, str | None]]:
    return [{"id": s.activity.id, "foreign_id": s.activity.foreign_id} for s in stored]


async def commit(hub: Hub, app: str, activities: Sequence[Activity]) -> tuple[StoreResult, bool]:
    """Store durably (with a pending marker), write the own and addressed feeds, then
    queue one planning job for the followers of what is new.

    Returns the stored activities and whether their fan-out is queued, so that the
    markers may go. A ``foreign_id`` seen twice (in one request or across a group) is
    stored once: the first occurrence is ``created``, later ones repeat it. A known
    activity whose first try may not have got its fan-out queued is fanned out again.
    """
    trip = Trip(hub.redis)  # one round trip after Cassandra's: bodies, own feeds, the job
    result = await hub.activities.store_many(app, activities, trip=trip)
    todo = list({s.activity.id: s.activity for s in result.stored if s.fan_out}.values())
    if todo:
        queue_own_feeds(hub, trip, app, todo)
        queue_fanout(hub, trip, app, [a.id for a in todo], own_done=True)
    try:
        await trip.execute()
    except REDIS_DOWN:
        log.warning("%s: %d activities stored but not queued: the sweep will fan them out", app, len(todo))
        return result, False
    return result, True


async def drop_markers(hub: Hub, app: str, result: StoreResult) -> None:
    try:
        await hub.activities.fanout_queued(app, result.minute, *result.markers)
    except Unavailable:  # stored and queued: the sweep re-queues it, harmlessly
        log.warning("%s: pending markers %s not cleared", app, ", ".join(result.markers))


async def delete(hub: Hub, app: str, activity_id: str | None, foreign_id: str | None) -> str:
    if activity_id is None and foreign_id is not None:
        activity_id = await hub.activities.find_by_foreign_id(app, foreign_id)
    activity = await hub.activities.get_one(app, activity_id, include_deleted=True) if activity_id else None
    if activity is None or activity_id is None:
        raise NotFound("no such activity", field="foreign_id" if foreign_id else "id")
    await hub.activities.delete(app, activity)
    await enqueue_remove(hub, app, activity_id)
    return activity_id
