"""Activities: stored once in Cassandra, bodies cached in Redis.

Feeds hold only activity ids; a page of a feed is a list of ids plus one MGET of bodies
(falling back to Cassandra for the ones Redis lost). Storing is idempotent by
``foreign_id`` and completes a half-done earlier try.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from hub.domain.models import Activity
from hub.storage.cassandra import Cassandra
from hub.storage.redis import Keys

# Bodies are immutable, so a long TTL is safe; it only bounds memory for cold activities.
BODY_TTL = 14 * 86400
# Redis claims of foreign ids: a fast path only, Cassandra holds the durable mapping.
CLAIM_TTL = 86400
# How long a duplicate waits for the first writer of its foreign_id to finish.
CLAIM_WAIT = 3.0


def minute_bucket(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 60)


@dataclass(frozen=True)
class PendingBatch:
    minute: int
    id: str  # the marker: the batch's smallest activity id
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Stored:
    activity: Activity
    created: bool  # False when the foreign_id was known: the first activity is returned


@dataclass(frozen=True)
class StoreResult:
    stored: list[Stored]  # one per activity given, in order
    minute: int  # the pending markers' partition
    markers: tuple[str, ...]  # to drop once the fan-out is queued


class ActivityStore:
    def __init__(self, db: Cassandra, redis: Redis, prefix: str) -> None:
        self.db = db
        self.redis = redis
        self.prefix = prefix

    def keys(self, app: str) -> Keys:
        return Keys(self.prefix, app)

    async def store(self, app: str, activity: Activity, *, minute: int | None = None) -> Stored:
        return (await self.store_many(app, [activity], minute=minute)).stored[0]

    async def store_many(self, app: str, activities: Sequence[Activity], *, minute: int | None = None) -> StoreResult:
        """Make activities durable, after their pending fan-out marker, before any 202.

        ``foreign_id`` decides identity: the first id stored for it wins. Claims are taken
        in Redis (fast, and serialises concurrent duplicates) and checked against the
        durable mapping in Cassandra (Redis may have lost them). A claim whose body never
        landed (its writer died) is completed by the next try under the claimed id.

        The marker is durable before any row of its activities, so a failure part way
        (answered 503) leaves either nothing to fan out or a marker the sweep acts on; a
        retry that then finds its activity stored relies on that. The claims, the
        Cassandra check of the claims and the marker go in parallel: the marker names
        every candidate id, and one that turns out to exist already is skipped by the
        fan-out (no body under that id).
        """
        k = self.keys(app)
        minute = minute_bucket() if minute is None else minute
        if not activities:
            return StoreResult([], minute, ())
        chosen: dict[str, Activity] = {}  # foreign_id -> the activity that stands for it
        for a in activities:
            if a.foreign_id is not None:
                chosen.setdefault(a.foreign_id, a)
        fids = list(chosen)
        candidates = [a.id for a in chosen.values()] + [a.id for a in activities if a.foreign_id is None]
        prior, known, marker = await asyncio.gather(
            self._claim(k, [(f, chosen[f].id) for f in fids]),
            self.find_by_foreign_ids(app, fids),
            self._mark_pending(app, minute, candidates),
        )
        markers = [marker]
        existing: dict[str, Activity] = {}
        adopted: list[str] = []  # ids of earlier tries this one completes
        for fid, p in zip(fids, prior):
            claimed_id = known.get(fid) or p  # Cassandra's mapping is the durable one
            if claimed_id is None or claimed_id == chosen[fid].id:
                continue
            found = await self._wait_for_body(app, claimed_id)
            if found is not None:
                existing[fid] = found
            else:
                chosen[fid] = replace(chosen[fid], id=claimed_id)  # finish the earlier try
                adopted.append(claimed_id)
        if adopted:
            markers.append(await self._mark_pending(app, minute, candidates + adopted))
        fresh = [a for fid, a in chosen.items() if fid not in existing]
        fresh += [a for a in activities if a.foreign_id is None]
        await self._write(app, fresh)
        results: list[Stored] = []
        reported: set[str] = set()
        for a in activities:
            if a.foreign_id is None:
                results.append(Stored(a, created=True))
            elif a.foreign_id in existing:
                results.append(Stored(existing[a.foreign_id], created=False))
            else:
                # The first of a batch's duplicates is the one written; the rest repeat it.
                first = a.foreign_id not in reported
                reported.add(a.foreign_id)
                results.append(Stored(chosen[a.foreign_id], created=first))
        return StoreResult(results, minute, tuple(sorted(set(markers))))

    async def _claim(self, k: Keys, claims: Sequence[tuple[str, str]]) -> list[str | None]:
        """``SET NX GET`` per foreign id: None where this try got the claim, else the id
        an earlier try claimed."""
        if not claims:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for fid, aid in claims:
            pipe.set(k.foreign_id(fid), aid, nx=True, get=True, ex=CLAIM_TTL)
        return list(await pipe.execute())

    async def _mark_pending(self, app: str, minute: int, ids: Sequence[str]) -> str:
        """One marker row naming these ids; its id (the smallest) is returned."""
        ordered = sorted(ids)
        await self.db.execute(
            "INSERT INTO {ks}.pending_fanout (app, minute, id, ids) VALUES (%s, %s, %s, %s)",
            (app, minute, ordered[0], json.dumps(ordered)),
        )
        return ordered[0]

    async def _wait_for_body(self, app: str, activity_id: str) -> Activity | None:
        """The activity of a claim, waiting briefly for a concurrent writer to finish."""
        deadline = time.monotonic() + CLAIM_WAIT
        while True:
            found = await self.get_one(app, activity_id)
            if found is not None or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)

    async def _write(self, app: str, activities: Sequence[Activity]) -> None:
        """Each activity's rows in its own unlogged batch, all batches concurrently.

        Not one batch for all: Cassandra applies a batch's partitions one after the
        other, each waiting for its commit-log sync (batch mode, the durable one), so a
        batch of 20 activities took about 110 ms where 20 concurrent batches take about
        25 (docs/benchmarks.md, Intake). Unlogged is safe: every row is idempotent,
        nothing is answered 202 before all batches succeed, and each row alone is
        harmless (a user-feed row without a body is skipped by rebuilds).
        """
        if not activities:
            return
        bodies: dict[str, str] = {}
        batches: list[list[tuple[str, Sequence[object]]]] = []
        for a in activities:
            body = json.dumps(a.to_json(), separators=(",", ":"))
            bodies[a.id] = body
            rows: list[tuple[str, Sequence[object]]] = [
                ("INSERT INTO {ks}.activities (app, id, body, deleted) VALUES (%s, %s, %s, false)", (app, a.id, body)),
                ("INSERT INTO {ks}.user_activities (app, actor, id) VALUES (%s, %s, %s)", (app, a.actor, a.id)),
            ]
            if a.foreign_id is not None:
                rows.append(("INSERT INTO {ks}.activity_by_foreign_id (app, foreign_id, id) VALUES (%s, %s, %s)",
                             (app, a.foreign_id, a.id)))
            rows += [("INSERT INTO {ks}.feed_targets (app, feed, id) VALUES (%s, %s, %s)", (app, f, a.id)) for f in a.to]
            batches.append(rows)
        await asyncio.gather(*(self.db.batch(b, logged=False) for b in batches))
        k = self.keys(app)
        pipe = self.redis.pipeline(transaction=False)
        for aid, body in bodies.items():
            pipe.set(k.activity(aid), body, ex=BODY_TTL)
        await pipe.execute()

    async def fanout_queued(self, app: str, minute: int, *markers: str) -> None:
        """The batch's fan-out jobs are queued: its pending markers are no longer needed."""
        await asyncio.gather(*(
            self.db.execute("DELETE FROM {ks}.pending_fanout WHERE app = %s AND minute = %s AND id = %s",
                            (app, minute, m))
            for m in markers
        ))

    async def pending(self, app: str, minutes: Iterable[int]) -> list[PendingBatch]:
        async def one(m: int) -> list[PendingBatch]:
            rows = await self.db.execute(
                "SELECT id, ids FROM {ks}.pending_fanout WHERE app = %s AND minute = %s", (app, m)
            )
            return [PendingBatch(m, r.id, tuple(json.loads(r.ids)) if r.ids else (r.id,)) for r in rows]

        return [p for part in await asyncio.gather(*(one(m) for m in minutes)) for p in part]

    async def get_one(self, app: str, activity_id: str, *, include_deleted: bool = False) -> Activity | None:
        return (await self.get_many(app, [activity_id], include_deleted=include_deleted)).get(activity_id)

    async def get_many(self, app: str, ids: Sequence[str], *, include_deleted: bool = False) -> dict[str, Activity]:
        """Bodies by id, from Redis, then Cassandra for the misses (re-caching them).

        Deleted activities are left out unless ``include_deleted`` (removal needs them).
        """
        if not ids:
            return {}
        k = self.keys(app)
        cached = await self.redis.mget([k.activity(i) for i in ids])
        found: dict[str, Activity] = {}
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
                if r.deleted and not include_deleted:
                    continue
                found[r.id] = Activity.from_json(json.loads(r.body))
                if not r.deleted:
                    pipe.set(k.activity(r.id), r.body, ex=BODY_TTL)
            await pipe.execute()
        return found

    async def _fetch_rows(self, app: str, ids: Sequence[str]) -> list[object]:
        results = await asyncio.gather(*(
            self.db.execute("SELECT id, body, deleted FROM {ks}.activities WHERE app = %s AND id = %s", (app, i))
            for i in ids
        ))
        return [r for rows in results for r in rows]

    async def find_by_foreign_id(self, app: str, foreign_id: str) -> str | None:
        return (await self.find_by_foreign_ids(app, [foreign_id])).get(foreign_id)

    async def find_by_foreign_ids(self, app: str, foreign_ids: Sequence[str]) -> dict[str, str]:
        """Known ids by foreign id: one multi-partition read per 100 foreign ids."""
        parts = [list(foreign_ids[i : i + 100]) for i in range(0, len(foreign_ids), 100)]
        results = await asyncio.gather(*(
            self.db.execute(
                "SELECT foreign_id, id FROM {ks}.activity_by_foreign_id WHERE app = %s AND foreign_id IN %s", (app, p)
            )
            for p in parts
        ))
        return {r.foreign_id: r.id for rows in results for r in rows}

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
