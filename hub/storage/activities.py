"""Activities: stored once in Cassandra, bodies cached in Redis.

Feeds hold only activity ids; a page of a feed is a list of ids plus one MGET of bodies
(falling back to Cassandra for the ones Redis lost). Storing is idempotent by
``foreign_id`` through a lightweight transaction, and completes a half-done earlier try.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis

from hub.domain.models import Activity
from hub.storage.cassandra import Cassandra
from hub.storage.redis import Keys

# Bodies are immutable, so a long TTL is safe; it only bounds memory for cold activities.
BODY_TTL = 14 * 86400


def minute_bucket(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 60)


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

    async def store(self, app: str, activity: Activity) -> Stored:
        """Make ``activity`` durable, with its pending fan-out marker, before any 202."""
        if activity.foreign_id is not None:
            rows = await self.db.execute(
                "INSERT INTO {ks}.activity_by_foreign_id (app, foreign_id, id) VALUES (%s, %s, %s) IF NOT EXISTS",
                (app, activity.foreign_id, activity.id),
            )
            if not rows[0].applied:
                existing_id: str = rows[0].id
                existing = await self.get_one(app, existing_id)
                if existing is not None:
                    return Stored(existing, created=False)
                # The earlier try claimed the foreign_id but died before storing the body:
                # finish it under the claimed id, so the app's retry is the one that lands.
                activity = replace(activity, id=existing_id)
        body = json.dumps(activity.to_json(), separators=(",", ":"))
        stmts: list[tuple[str, Sequence[object]]] = [
            ("INSERT INTO {ks}.activities (app, id, body, deleted) VALUES (%s, %s, %s, false)", (app, activity.id, body)),
            ("INSERT INTO {ks}.user_activities (app, actor, id) VALUES (%s, %s, %s)", (app, activity.actor, activity.id)),
            ("INSERT INTO {ks}.pending_fanout (app, minute, id) VALUES (%s, %s, %s)", (app, minute_bucket(), activity.id)),
        ]
        stmts += [
            ("INSERT INTO {ks}.feed_targets (app, feed, id) VALUES (%s, %s, %s)", (app, feed, activity.id))
            for feed in activity.to
        ]
        # Logged: the activity, its user-feed row and its pending marker land together.
        await self.db.batch(stmts, logged=True)
        await self.redis.set(self.keys(app).activity(activity.id), body, ex=BODY_TTL)
        return Stored(activity, created=True)

    async def fanout_done(self, app: str, activity_id: str, minute: int) -> None:
        await self.db.execute(
            "DELETE FROM {ks}.pending_fanout WHERE app = %s AND minute = %s AND id = %s", (app, minute, activity_id)
        )

    async def pending(self, app: str, minutes: Iterable[int]) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        for m in minutes:
            rows = await self.db.execute("SELECT id FROM {ks}.pending_fanout WHERE app = %s AND minute = %s", (app, m))
            found += [(m, r.id) for r in rows]
        return found

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

    async def get_many_json(self, app: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Bodies as the API shows them (the stored ``to_json`` text, parsed), deleted ones left out.

        The read path's variant of :meth:`get_many`: it skips the model round trip
        (parsing and re-formatting times), which was a fifth of a hot read's CPU.
        """
        if not ids:
            return {}
        k = self.keys(app)
        cached = await self.redis.mget([k.activity(i) for i in ids])
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for i, raw in zip(ids, cached):
            if raw is None:
                missing.append(i)
            else:
                found[i] = json.loads(raw)
        if missing:
            for i, a in (await self.get_many(app, missing)).items():
                found[i] = a.to_json()
        return found

    async def _fetch_rows(self, app: str, ids: Sequence[str]) -> list[object]:
        results = await asyncio.gather(*(
            self.db.execute("SELECT id, body, deleted FROM {ks}.activities WHERE app = %s AND id = %s", (app, i))
            for i in ids
        ))
        return [r for rows in results for r in rows]

    async def find_by_foreign_id(self, app: str, foreign_id: str) -> str | None:
        rows = await self.db.execute(
            "SELECT id FROM {ks}.activity_by_foreign_id WHERE app = %s AND foreign_id = %s", (app, foreign_id)
        )
        return rows[0].id if rows else None

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
