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
# Newer Cassandra refuses batches over 50 KiB (batch_size_fail_threshold_in_kb).
MAX_BATCH_BYTES = 40 * 1024



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


class ActivityStore:
    def __init__(self, db: Cassandra, redis: Redis, prefix: str) -> None:
        self.db = db
        self.redis = redis
        self.prefix = prefix

    def keys(self, app: str) -> Keys:
        return Keys(self.prefix, app)

    async def store(self, app: str, activity: Activity, *, minute: int | None = None) -> Stored:
        return (await self.store_many(app, [activity], minute=minute))[0]

    async def store_many(self, app: str, activities: Sequence[Activity], *, minute: int | None = None) -> list[Stored]:
        """Make activities durable, with one pending fan-out marker, before any 202.

        ``foreign_id`` decides identity: the first id stored for it wins. Claims are taken
        in Redis (fast, and serialises concurrent duplicates) and checked against the
        durable mapping in Cassandra (Redis may have lost them). A claim whose body never
        landed (its writer died) is completed by the next try under the claimed id.
        """
        k = self.keys(app)
        chosen: dict[str, Activity] = {}  # foreign_id -> the activity that stands for it
        for a in activities:
            if a.foreign_id is not None:
                chosen.setdefault(a.foreign_id, a)
        existing: dict[str, Activity] = {}
        if chosen:
            fids = list(chosen)
            pipe = self.redis.pipeline(transaction=False)
            for fid in fids:
                pipe.set(k.foreign_id(fid), chosen[fid].id, nx=True, get=True, ex=CLAIM_TTL)
            prior = await pipe.execute()
            # Claims Redis just granted may still be known to Cassandra (Redis forgot them).
            known = await self.find_by_foreign_ids(app, [f for f, p in zip(fids, prior) if p is None])
            durable = [p if p is not None else known.get(f) for f, p in zip(fids, prior)]
            for fid, claimed_id in zip(fids, durable):
                if claimed_id is None:
                    continue
                found = await self._wait_for_body(app, claimed_id)
                if found is not None:
                    existing[fid] = found
                else:
                    chosen[fid] = replace(chosen[fid], id=claimed_id)  # finish the earlier try
        fresh: list[Activity] = []
        for fid, a in chosen.items():
            if fid not in existing:
                fresh.append(a)
        fresh += [a for a in activities if a.foreign_id is None]
        await self._write(app, fresh, minute_bucket() if minute is None else minute)
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
        return results

    async def _wait_for_body(self, app: str, activity_id: str) -> Activity | None:
        """The activity of a claim, waiting briefly for a concurrent writer to finish."""
        deadline = time.monotonic() + CLAIM_WAIT
        while True:
            found = await self.get_one(app, activity_id)
            if found is not None or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)

    async def _write(self, app: str, activities: Sequence[Activity], minute: int) -> None:
        """All rows of these activities in unlogged batches of bounded size.

        Unlogged is safe here: every row is idempotent, nothing is answered 202 before all
        batches succeed, and each row alone is harmless (a pending marker without bodies
        queues fan-outs that find nothing, a user-feed row without a body is skipped by
        rebuilds). The one pending marker goes with the last batch.
        """
        if not activities:
            return
        batches: list[list[tuple[str, Sequence[object]]]] = [[]]
        size = 0
        bodies: dict[str, str] = {}
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
            weight = len(body) + 200 * len(rows)
            if batches[-1] and size + weight > MAX_BATCH_BYTES:
                batches.append([])
                size = 0
            batches[-1] += rows
            size += weight
        ids = sorted(bodies)
        batches[-1].append((
            "INSERT INTO {ks}.pending_fanout (app, minute, id, ids) VALUES (%s, %s, %s, %s)",
            (app, minute, ids[0], json.dumps(ids)),
        ))
        await asyncio.gather(*(self.db.batch(b, logged=False) for b in batches))
        k = self.keys(app)
        pipe = self.redis.pipeline(transaction=False)
        for aid, body in bodies.items():
            pipe.set(k.activity(aid), body, ex=BODY_TTL)
        await pipe.execute()

    async def fanout_queued(self, app: str, minute: int, marker: str) -> None:
        """The batch's fan-out jobs are queued: its pending marker is no longer needed."""
        await self.db.execute(
            "DELETE FROM {ks}.pending_fanout WHERE app = %s AND minute = %s AND id = %s", (app, minute, marker)
        )

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
