"""Activities: stored once in Cassandra, bodies cached in Redis.

Feeds hold only activity ids; a page of a feed is a list of ids plus one MGET of bodies
(falling back to Cassandra for the ones Redis lost). Storing is idempotent by
``foreign_id`` and completes a half-done earlier try.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis

from hub.domain.models import Activity
from hub.storage import slots
from hub.storage.cassandra import Cassandra
from hub.storage.foreignids import INSERT as FOREIGN_ID_INSERT
from hub.storage.foreignids import Claim, ForeignIds
from hub.storage.pending import PendingMarkers, minute_bucket
from hub.storage.redis import Keys
from hub.storage.trip import Trip

# Bodies are immutable, so a long TTL is safe; it only bounds memory for cold activities.
BODY_TTL = 14 * 86400
# How long a duplicate waits for the first try of its foreign_id to finish.
CLAIM_WAIT = 3.0


@dataclass(frozen=True)
class Stored:
    activity: Activity
    created: bool  # False when the foreign_id was known: the first activity is returned
    # Known but its first try may have failed after storing it (answered 503), before
    # its fan-out was certain: this request queues the fan-out again (idempotent).
    unconfirmed: bool = False

    @property
    def fan_out(self) -> bool:
        return self.created or self.unconfirmed


@dataclass(frozen=True)
class StoreResult:
    stored: list[Stored]  # one per activity given, in order
    minute: int  # the pending marker's partition
    marker: str  # its name: to drop once the fan-out is certain (or none is needed)


class ActivityStore:
    def __init__(self, db: Cassandra, redis: Redis, prefix: str) -> None:
        self.db = db
        self.redis = redis
        self.prefix = prefix
        self.foreign_ids = ForeignIds(db, redis)
        self.markers = PendingMarkers(db)

    def keys(self, app: str) -> Keys:
        return Keys(self.prefix, app)

    async def store(self, app: str, activity: Activity, *, minute: int | None = None) -> Stored:
        return (await self.store_many(app, [activity], minute=minute)).stored[0]

    async def store_many(
        self,
        app: str,
        activities: Sequence[Activity],
        *,
        minute: int | None = None,
        trip: Trip | None = None,
        claimed: Mapping[str, Claim | None] | None = None,
        answered: Callable[[Mapping[str, str]], Awaitable[None]] | None = None,
    ) -> StoreResult:
        """Make activities durable, with a pending fan-out marker naming them, before any 202.

        ``foreign_id`` decides identity: the first try stored for it wins
        (hub/storage/foreignids.py). After the Redis claims, one Cassandra round writes
        the marker, the new activities' rows, and reads the durable record of the
        foreign ids just claimed. Rarely, more follows: a try that Redis had forgotten
        is found (ours is taken back), or an earlier try is settled (waited for, or
        finished under its id when it never stored its activity).

        A failure answers 503, marks this try's claims failed (best effort), and may
        leave some of the round written: rows without a marker are fanned out by the retry (the activity is then ``unconfirmed``, and its
        rows other than the body are written again), a marker without rows stays for the
        sweep a while in case they land late (hub/ops/fanout.py ``plan_many``). The
        marker is named by this try's smallest id, never by an earlier try's.

        The bodies go to Redis, and the claims are confirmed, on ``trip`` if one is given
        (its caller sends it), else at once.

        ``claimed`` holds, by activity id, the claims its caller already made
        (:func:`~hub.storage.foreignids.pending_claims`): what each found, None where
        that try won. Several requests of one group may share a foreign id; the one that
        won its claim stands for it and the others repeat it. Foreign ids nobody claimed
        yet are claimed here.

        ``answered``, if given, runs in the same Cassandra round with the id each
        activity will be answered with (by activity id), and again afterwards in the rare
        case that changes it (a try that Redis had forgotten): the caller's answer is
        made durable without a round of its own. It must not raise.
        """
        k = self.keys(app)
        minute = minute_bucket() if minute is None else minute
        if not activities:
            return StoreResult([], minute, "")
        chosen, earlier = await self.foreign_ids.stand_ins(k, activities, claimed or {})
        # This try's own claims (the ones it won): marked failed if it fails, so that a
        # retry settles it at once instead of waiting CLAIM_WAIT for it. Not those of a
        # try Redis forgot: the earlier id is the answer there, ours is taken back.
        mine = [(f, a.id) for f, a in chosen.items() if f not in earlier]
        forgotten: dict[str, str] = {}
        try:
            fresh = [a for f, a in chosen.items() if f not in earlier] + [a for a in activities if a.foreign_id is None]
            # Named by an id of this try only, so that no earlier try's marker or job shares
            # its name (hub/storage/pending.py).
            name = min(a.id for a in activities)
            named = [a.id for a in fresh] + [c.id for c in earlier.values()]
            answer_ids = {a.id: a.id if a.foreign_id is None else
                          earlier[a.foreign_id].id if a.foreign_id in earlier else chosen[a.foreign_id].id
                          for a in activities}
            marker, bodies, first, _ = await asyncio.gather(
                self.markers.mark(app, minute, named, name=name),
                self._write(app, fresh),
                self.foreign_ids.first_ids(app, {f: a.id for f, a in chosen.items() if f not in earlier}),
                answered(answer_ids) if answered is not None else asyncio.sleep(0),
            )
            # Tries that Redis had forgotten: an earlier id is on record, so ours is taken back.
            forgotten |= {f: i for f, i in first.items() if i < chosen[f].id}
            if forgotten:
                await asyncio.gather(*(self.delete(app, chosen[f]) for f in forgotten))
            settled = dict(zip([*earlier, *forgotten], await asyncio.gather(
                *(self._settle(app, k, f, chosen[f], c) for f, c in earlier.items()),
                *(self._settle(app, k, f, chosen[f], Claim(i, False), wait=False) for f, i in forgotten.items()),
            )))
            adopted = [a for a, how in settled.values() if how == "adopted"]
            unsure = [a for a, how in settled.values() if how == "unconfirmed"]
            if forgotten:  # the same marker, now naming the earlier ids too; the earlier ids answered
                fixed = {a.id: first[a.foreign_id] for a in activities if a.foreign_id in forgotten}
                await asyncio.gather(
                    self.markers.mark(app, minute, named + [a.id for a, _ in settled.values()], name=name),
                    answered(answer_ids | fixed) if answered is not None else asyncio.sleep(0),
                )
            if adopted or unsure:
                # An unconfirmed try may have stored only part of its rows (an unlogged
                # batch that failed half-way): its rows other than the body are written again.
                written = await asyncio.gather(self._write(app, adopted), self._write(app, unsure, body=False))
                bodies |= written[0]
            new = [a for a in fresh if a.foreign_id not in forgotten] + adopted
            own = trip is None
            trip = Trip(self.redis) if trip is None else trip
            self._cache(trip, k, [(a, bodies[a.id]) for a in new], [(f, a.id) for f, (a, _) in settled.items()])
            if own:
                await trip.execute()
            results: list[Stored] = []
            for a in activities:
                fid = a.foreign_id
                if fid is None:
                    results.append(Stored(a, created=True))
                    continue
                standing = a is chosen[fid]  # the others are duplicates and repeat it
                if fid in settled and settled[fid][1] != "adopted":
                    found, how = settled[fid]
                    results.append(Stored(found, created=False, unconfirmed=standing and how == "unconfirmed"))
                else:
                    stored = settled[fid][0] if fid in settled else chosen[fid]
                    results.append(Stored(stored, created=standing))
            return StoreResult(results, minute, marker)
        except Exception:
            await self.foreign_ids.failed(k, [(f, i) for f, i in mine if f not in forgotten])
            raise

    async def _settle(
        self, app: str, k: Keys, fid: str, ours: Activity, claim: Claim, *, wait: bool = True
    ) -> tuple[Activity, str]:
        """An earlier try's activity: ``existing`` (its fan-out is certain),
        ``unconfirmed`` (stored, fan-out uncertain), or ``adopted``: it never stored
        the activity, so ours is finished under its id."""
        if wait:
            claim = await self.foreign_ids.wait_confirmed(k, fid, claim, CLAIM_WAIT)
        alive, deleted = await self.lookup(app, [claim.id])
        if claim.id in alive:
            return alive[claim.id], "existing" if claim.confirmed else "unconfirmed"
        if claim.id in deleted:  # deleted since: repeated, never fanned out again
            return deleted[claim.id], "existing"
        return replace(ours, id=claim.id), "adopted"

    async def _write(self, app: str, activities: Sequence[Activity], *, body: bool = True) -> dict[str, str]:
        """Each activity's rows in its own unlogged batch, all batches concurrently.
        Returns the encoded bodies by id (for the Redis cache).

        Not one batch for all: Cassandra applies a batch's partitions one after the
        other, each waiting for its commit-log sync (batch mode, the durable one), so a
        batch of 20 activities took about 110 ms where 20 concurrent batches take about
        25 (docs/benchmarks.md, Intake). Unlogged is safe: every row is idempotent,
        nothing is answered 202 before all batches succeed, and each row alone is
        harmless (a user-feed row without a body is skipped by rebuilds).
        ``body=False``: all rows but the body's (an activity known to be stored).
        """
        bodies = {a.id: json.dumps(a.to_json(), separators=(",", ":")) for a in activities}
        batches: list[list[tuple[str, Sequence[object]]]] = []
        for a in activities:
            rows: list[tuple[str, Sequence[object]]] = [
                ("INSERT INTO {ks}.user_activities (app, actor, id) VALUES (%s, %s, %s)", (app, a.actor, a.id)),
            ]
            if body:  # else the body is stored (and must not be written over: it may be deleted)
                rows.insert(0, ("INSERT INTO {ks}.activities (app, id, body, deleted) VALUES (%s, %s, %s, false)",
                                (app, a.id, bodies[a.id])))
            if a.foreign_id is not None:
                rows.append((FOREIGN_ID_INSERT, (app, a.foreign_id, a.id)))
            rows += [("INSERT INTO {ks}.feed_targets (app, feed, id) VALUES (%s, %s, %s)", (app, f, a.id)) for f in a.to]
            batches.append(rows)
        await asyncio.gather(*(self.db.batch(b, logged=False) for b in batches))
        return bodies

    def _cache(
        self, trip: Trip, k: Keys, new: Sequence[tuple[Activity, str]], earlier: Sequence[tuple[str, str]]
    ) -> None:
        """Bodies of the new activities into Redis, and every foreign id's claim
        confirmed: each activity answered is durable and named by a durable marker."""
        for a, body in new:
            trip.pipe.set(k.activity(a.id), body, ex=BODY_TTL)
        self.foreign_ids.confirm(trip.pipe, k, [*((a.foreign_id, a.id) for a, _ in new if a.foreign_id), *earlier])

    async def get_one(self, app: str, activity_id: str, *, include_deleted: bool = False) -> Activity | None:
        return (await self.get_many(app, [activity_id], include_deleted=include_deleted)).get(activity_id)

    async def get_many(self, app: str, ids: Sequence[str], *, include_deleted: bool = False) -> dict[str, Activity]:
        """Bodies by id, from Redis, then Cassandra for the misses (re-caching them).

        Deleted activities are left out unless ``include_deleted`` (removal needs them).
        """
        alive, deleted = await self.lookup(app, ids)
        return alive | deleted if include_deleted else alive

    async def lookup(self, app: str, ids: Sequence[str]) -> tuple[dict[str, Activity], dict[str, Activity]]:
        """The stored activities among ``ids``, by id: those alive, and those deleted.
        An id in neither is not stored (yet, or ever)."""
        if not ids:
            return {}, {}
        k = self.keys(app)
        cached = await slots.mget(self.redis, [k.activity(i) for i in ids])  # by slot on a cluster
        found: dict[str, Activity] = {}
        deleted: dict[str, Activity] = {}
        missing: list[str] = []
        for i, raw in zip(ids, cached):
            if raw is None:
                missing.append(i)
            else:
                found[i] = Activity.from_json(json.loads(raw))
        if missing:
            rows = await self._fetch_rows(app, missing)
            pipe = self.redis.pipeline(transaction=False)
            for r in rows:
                if r.deleted:
                    deleted[r.id] = Activity.from_json(json.loads(r.body))
                    continue
                found[r.id] = Activity.from_json(json.loads(r.body))
                pipe.set(k.activity(r.id), r.body, ex=BODY_TTL)
            await pipe.execute()
        return found, deleted

    async def _fetch_rows(self, app: str, ids: Sequence[str]) -> list[Any]:
        results = await asyncio.gather(*(
            self.db.execute("SELECT id, body, deleted FROM {ks}.activities WHERE app = %s AND id = %s", (app, i))
            for i in ids
        ))
        return [r for rows in results for r in rows]

    async def find_by_foreign_id(self, app: str, foreign_id: str) -> str | None:
        return (await self.foreign_ids.first_ids(app, {foreign_id: None})).get(foreign_id)

    async def delete(self, app: str, activity: Activity) -> None:
        """Mark deleted and drop it from the sources feeds are rebuilt from."""
        stmts: list[tuple[str, Sequence[object]]] = [
            ("UPDATE {ks}.activities SET deleted = true WHERE app = %s AND id = %s", (app, activity.id)),
            ("DELETE FROM {ks}.user_activities WHERE app = %s AND actor = %s AND id = %s", (app, activity.actor, activity.id)),
        ]
        stmts += [
            ("DELETE FROM {ks}.feed_targets WHERE app = %s AND feed = %s AND id = %s", (app, f, activity.id))
            for f in activity.to
        ]
        await self.db.batch(stmts, logged=True)
        await self.redis.delete(self.keys(app).activity(activity.id))

    async def user_activity_ids(
        self, app: str, actor: str, limit: int, *, upto: str | None = None, above: str | None = None
    ) -> list[str]:
        """An actor's activity ids, newest first, within ``(above, upto]``."""
        cql = "SELECT id FROM {ks}.user_activities WHERE app = %s AND actor = %s"
        params: list[object] = [app, actor]
        if upto is not None:
            cql += " AND id <= %s"
            params.append(upto)
        if above is not None:
            cql += " AND id > %s"
            params.append(above)
        cql += " LIMIT %s"
        params.append(limit)
        return [r.id for r in await self.db.execute(cql, params)]

    async def target_ids(self, app: str, feed: str, limit: int) -> list[str]:
        rows = await self.db.execute(
            "SELECT id FROM {ks}.feed_targets WHERE app = %s AND feed = %s LIMIT %s", (app, feed, limit)
        )
        return [r.id for r in rows]
