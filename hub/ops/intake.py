"""Accepting activities: validate, store durably, queue the fan-out.

An activity is answered 202 only once it is in Cassandra together with a pending fan-out
marker for its group. The marker stays until the fan-out is certain: the planning job
deletes it once it has queued every chunk (hub/ops/fanout.py ``plan_many``), and intake
deletes it only when there was no job to queue. If queueing fails, or the job fails for
good, the worker's sweep finds the marker and queues the fan-out again, so an accepted
activity is never lost (hub/storage/pending.py).

In ``hub serve`` the requests of one app that arrive together are committed as one group
(:class:`Intake`, hub/ops/groupcommit.py): one foreign-id read, one marker and one fan-out
job for all of them, so the work per activity falls as the load rises. Their foreign ids
were claimed before, in the Redis call that admitted each request (web/gate.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub.background import Background
from hub.core import Hub
from hub.domain.activity import ActivityInput
from hub.domain.models import Activity
from hub.errors import InvalidActivity, NotFound, Unavailable
from hub.ops.fanout import enqueue_remove, queue_fanout, queue_own_feeds
from hub.ops.groupcommit import GroupCommit
from hub.queue import EXISTS, NOTHING_TO_DO
from hub.storage import activities as activity_store
from hub.storage.activities import Stored, StoreResult
from hub.storage.answers import PendingAnswer
from hub.storage.foreignids import CLAIM_TTL, Claim, parse_claim, pending_claims
from hub.storage.pending import MarkerRef
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


@dataclass(frozen=True)
class Incoming:
    """A request's activities, checked and given their ids, and the claims of their
    foreign ids (one per foreign id), which the caller makes in a round trip it already
    has (``web/gate.py``: the same Lua call as replay protection and the rate limit)."""

    app: str
    activities: list[Activity]
    claimants: list[str]  # the activity id of each claim, in order
    claims: list[tuple[str, str]]  # Redis key and pending value: SET NX GET EX CLAIM_TTL
    claim_ttl: int = CLAIM_TTL


@dataclass(frozen=True)
class _Item:
    activity: Activity
    claimed: bool  # its foreign id's claim was made before the group
    claim: Claim | None  # what that claim found: None when this try won it
    answer: PendingAnswer | None = None  # its request's answer, written in the group's round


class Intake:
    """Accepting activities in one server process: concurrent requests share commits.

    A committed group's pending marker is dropped by its planning job, or here after the
    answers go out when no job was needed: a marker left behind by a crash only makes the
    sweep queue an idempotent fan-out again.
    """

    def __init__(self, hub: Hub, *, max_group: int = MAX_GROUP) -> None:
        self.hub = hub
        self.groups: GroupCommit[str, _Item, Stored] = GroupCommit(
            self._commit, max_items=max_group, concurrency=GROUP_CONCURRENCY
        )
        self._cleanups = Background()  # pending markers dropped after the answers

    def prepare(self, app: str, inputs: Sequence[ActivityInput], *, batch: bool) -> Incoming:
        """Everything before any I/O; raises :class:`InvalidActivity` for a bad target."""
        check_targets(self.hub, inputs, batch)
        activities = [a.with_id(self.hub.ids.new()) for a in inputs]
        firsts: dict[str, str] = {}
        for a in activities:
            if a.foreign_id is not None:
                firsts.setdefault(a.foreign_id, a.id)
        claims = pending_claims(self.hub.activities.keys(app), list(firsts.items()))
        return Incoming(app, activities, list(firsts.values()), claims)

    async def accept(
        self, incoming: Incoming, found: Sequence[Any], *, answer: PendingAnswer | None = None
    ) -> list[dict[str, str | None]]:
        """Commit prepared activities whose claims found ``found`` (raw Redis replies, in
        order), together with whatever other requests of the app are waiting.
        ``answer``: the request's answer, written (rendered from what this returns) in
        the group's Cassandra round, unless every activity has a foreign id (then it is
        marked ``idempotent``: a repeat run again answers the same ids)."""
        claims = await self._wait_earlier(incoming, dict(zip(incoming.claimants, map(parse_claim, found))))
        if answer is not None and all(a.foreign_id is not None for a in incoming.activities):
            # A repeat run again finds every foreign id and answers the same: no record.
            answer.idempotent, answer = True, None
        items = [_Item(a, a.id in claims, claims.get(a.id), answer) for a in incoming.activities]
        return _answer(await self.groups.submit(incoming.app, items))

    async def close(self) -> None:
        await self._cleanups.close()

    async def _wait_earlier(self, incoming: Incoming, claims: dict[str, Claim | None]) -> dict[str, Claim | None]:
        """Wait (up to ``CLAIM_WAIT``) for the earlier tries whose claims are pending, here,
        before joining a group: a group waits for no claim, so one slow foreign id never
        delays the other requests of its app. A claim marked failed is not waited for."""
        waiting = {aid: c for aid, c in claims.items() if c is not None and not c.confirmed and not c.final}
        if not waiting:
            return claims
        fids = {a.id: a.foreign_id for a in incoming.activities}
        k = self.hub.activities.keys(incoming.app)
        ids = self.hub.activities.foreign_ids
        done = await asyncio.gather(*(ids.wait_confirmed(k, str(fids[aid]), c, activity_store.CLAIM_WAIT) for aid, c in waiting.items()))
        return claims | dict(zip(waiting, done))

    async def _commit(self, app: str, items: list[_Item]) -> list[Stored]:
        claimed = {i.activity.id: i.claim for i in items if i.claimed}
        requests: dict[int, tuple[PendingAnswer, list[Activity]]] = {}
        for i in items:
            if i.answer is not None:
                requests.setdefault(id(i.answer), (i.answer, []))[1].append(i.activity)

        async def answered(ids: Mapping[str, str]) -> None:
            await asyncio.gather(*(
                pa.write([{"id": ids[a.id], "foreign_id": a.foreign_id} for a in acts]) for pa, acts in requests.values()
            ))

        activities = [i.activity for i in items]
        result, done = await commit(self.hub, app, activities, claimed, answered=answered if requests else None)
        if done:
            self._cleanups.spawn(drop_marker(self.hub, app, result))
        return result.stored


async def accept(hub: Hub, app: str, inputs: Sequence[ActivityInput], *, batch: bool) -> list[dict[str, str | None]]:
    """One request on its own (no grouping): tests and tools."""
    check_targets(hub, inputs, batch)
    result, done = await commit(hub, app, [a.with_id(hub.ids.new()) for a in inputs])
    if done:
        await drop_marker(hub, app, result)
    return _answer(result.stored)


def _answer(stored: Sequence[Stored]) -> list[dict[str, str | None]]:
    return [{"id": s.activity.id, "foreign_id": s.activity.foreign_id} for s in stored]


async def commit(
    hub: Hub, app: str, activities: Sequence[Activity], claimed: Mapping[str, Claim | None] | None = None,
    answered: Callable[[Mapping[str, str]], Awaitable[None]] | None = None,
) -> tuple[StoreResult, bool]:
    """Store durably (with a pending marker), write the own and addressed feeds, then
    queue one planning job for the followers of what is new (none when the authors are
    known to have no followers).

    Returns the stored activities and whether the marker may go now: True only when no
    planning job was needed. A queued job drops the marker itself once the fan-out is
    certain; one that could not be queued (Redis down, or a job of that name still
    there) leaves it to the sweep. A ``foreign_id`` seen twice (in one request or across
    a group) is stored once: the occurrence that won its claim (else the first) is
    ``created``, the others repeat it. A known activity whose first try may not have got
    its fan-out certain is fanned out again.
    ``claimed``, ``answered``: as for ``ActivityStore.store_many``.
    """
    trip = Trip(hub.redis)  # one round trip after Cassandra's: bodies, own feeds, the job
    result = await hub.activities.store_many(app, activities, trip=trip, claimed=claimed, answered=answered)
    todo = list({s.activity.id: s.activity for s in result.stored if s.fan_out}.values())
    job = None
    if todo:
        queue_own_feeds(hub, trip, app, todo)
        job = queue_fanout(hub, trip, app, [a.id for a in todo], own_done=True, authors=[a.actor for a in todo],
                           marker=MarkerRef(result.minute, result.marker))
    try:
        answers = await trip.execute()
    except REDIS_DOWN:
        log.warning("%s: %d activities stored but not queued: the sweep will fan them out", app, len(todo))
        return result, False
    if job is not None and answers[job] == EXISTS:  # only a re-used name: the sweep re-queues it
        log.warning("%s: fan-out job of marker %s already there; left to the sweep", app, result.marker)
    return result, job is None or answers[job] == NOTHING_TO_DO


async def drop_marker(hub: Hub, app: str, result: StoreResult) -> None:
    if not result.marker:
        return
    try:
        await hub.activities.markers.queued(app, result.minute, result.marker)
    except Unavailable:  # nothing to fan out: the sweep's job finds that out again, harmlessly
        log.warning("%s: pending marker %s not cleared", app, result.marker)


async def delete(hub: Hub, app: str, activity_id: str | None, foreign_id: str | None) -> str:
    if activity_id is None and foreign_id is not None:
        activity_id = await hub.activities.find_by_foreign_id(app, foreign_id)
    activity = await hub.activities.get_one(app, activity_id, include_deleted=True) if activity_id else None
    if activity is None or activity_id is None:
        raise NotFound("no such activity", field="foreign_id" if foreign_id else "id")
    await hub.activities.delete(app, activity)
    await enqueue_remove(hub, app, activity_id)
    return activity_id
