"""The follow graph: both directions in Cassandra, followers cached in Redis for fan-out.

The Redis set of a user's followers holds the sentinel ``!`` once loaded, so an empty set
and a missing cache are told apart. Follow and unfollow update it only when it is loaded,
and count every change in a counter beside it. A load notes the counter before it reads
Cassandra and writes the set only if the counter has not moved since: a change that
lands in between is either in what the load read or applied to the set after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from redis.asyncio import Redis

from hub.storage import scripts
from hub.storage.cassandra import Cassandra
from hub.storage.precondition import SetsHoldOnly
from hub.storage.redis import Keys

SENTINEL = "!"
# The counter only has to outlive a load (milliseconds); an hour is generous. A counter
# that expires mid-load reads as changed, which only makes the load skip its write.
CHANGES_TTL = 3600


@dataclass(frozen=True)
class Follow:
    follower: str
    followee: str
    since: str | None  # the followee's newest activity id when the follow began
    copy: int


@dataclass(frozen=True)
class KeptHistory:
    followee: str
    since: str | None
    until: str
    copy: int


class FollowStore:
    def __init__(self, db: Cassandra, redis: Redis, prefix: str, *, cache_days: float = 14.0) -> None:
        self.db = db
        self.redis = redis
        self.prefix = prefix
        # A loaded followers set lives this long (fanout.cache_days), then loads again.
        self.cache_seconds = max(1, round(cache_days * 86400))
        self._change = redis.register_script(scripts.FOLLOW_CHANGE)
        self._load = redis.register_script(scripts.FOLLOW_LOAD)

    def keys(self, app: str) -> Keys:
        return Keys(self.prefix, app)

    async def get(self, app: str, follower: str, followee: str) -> Follow | None:
        rows = await self.db.execute(
            "SELECT since, copy FROM {ks}.following WHERE app = %s AND follower = %s AND followee = %s",
            (app, follower, followee),
        )
        return Follow(follower, followee, rows[0].since, rows[0].copy or 0) if rows else None

    async def add(self, app: str, follow: Follow) -> None:
        now = datetime.now(timezone.utc)
        await self.db.batch([
            ("INSERT INTO {ks}.following (app, follower, followee, since, copy, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
             (app, follow.follower, follow.followee, follow.since, follow.copy, now)),
            ("INSERT INTO {ks}.followers (app, followee, follower, created_at) VALUES (%s, %s, %s, %s)",
             (app, follow.followee, follow.follower, now)),
        ])
        await self._changed(app, follow, "add")

    async def remove(self, app: str, follow: Follow, *, keep_until: str | None) -> None:
        """Unfollow; with ``keep_until`` the copied history stays (recorded for rebuilds)."""
        stmts: list[tuple[str, Sequence[object]]] = [
            ("DELETE FROM {ks}.following WHERE app = %s AND follower = %s AND followee = %s",
             (app, follow.follower, follow.followee)),
            ("DELETE FROM {ks}.followers WHERE app = %s AND followee = %s AND follower = %s",
             (app, follow.followee, follow.follower)),
        ]
        if keep_until is not None:
            stmts.append((
                "INSERT INTO {ks}.kept_history (app, follower, followee, since, until, copy) VALUES (%s, %s, %s, %s, %s, %s)",
                (app, follow.follower, follow.followee, follow.since, keep_until, follow.copy),
            ))
        await self.db.batch(stmts)
        await self._changed(app, follow, "remove")

    async def reassert(self, app: str, follow: Follow, how: str) -> None:
        """Apply a follow's (``add``) or an unfollow's (``remove``) change to the cached set
        again; idempotent. For the retry of a follow or unfollow that was answered 503 after
        its logged batch reached the batch log: Cassandra replays the batch whole, but that
        try never changed the cache (docs/design.md, Consistency)."""
        await self._changed(app, follow, how)

    async def _changed(self, app: str, follow: Follow, how: str) -> None:
        k = self.keys(app)
        keys = [k.followers(follow.followee), k.followers_changes(follow.followee)]
        await self._change(keys=keys, args=[how, follow.follower, CHANGES_TTL])

    async def followers(self, app: str, user: str) -> list[str]:
        """All followers, from the Redis cache, loading it from Cassandra on a miss."""
        k = self.keys(app)
        # redis-py types each command as "value | Awaitable"; the asyncio client always awaits.
        members: set[str] = await self.redis.smembers(k.followers(user))  # type: ignore[misc]
        if SENTINEL in members:
            members.discard(SENTINEL)
            return list(members)
        before = await self.redis.get(k.followers_changes(user)) or ""
        rows = await self.db.execute(
            "SELECT follower FROM {ks}.followers WHERE app = %s AND followee = %s", (app, user), fetch_size=5000
        )
        loaded = [r.follower for r in rows]
        # Not written when a follow or unfollow came in meanwhile: the next load will.
        await self._load(keys=[k.followers(user), k.followers_changes(user)], args=[before, self.cache_seconds, *loaded])
        return loaded

    def have_none(self, app: str, users: Sequence[str]) -> SetsHoldOnly:
        """"None of ``users`` has a follower", as their loaded caches say, for a job's
        script to check in the round trip that queues the job (hub/queue.py)."""
        return SetsHoldOnly(SENTINEL, [self.keys(app).followers(u) for u in users])

    async def followers_many(self, app: str, users: Sequence[str]) -> dict[str, list[str]]:
        """Followers of several users: one Redis round trip, Cassandra for the misses."""
        if not users:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for u in users:
            pipe.smembers(self.keys(app).followers(u))
        found: dict[str, list[str]] = {}
        for u, members in zip(users, await pipe.execute()):
            if SENTINEL in members:
                members.discard(SENTINEL)
                found[u] = list(members)
            else:
                found[u] = await self.followers(app, u)
        return found

    async def following(self, app: str, user: str) -> list[Follow]:
        rows = await self.db.execute(
            "SELECT followee, since, copy FROM {ks}.following WHERE app = %s AND follower = %s", (app, user),
            fetch_size=5000,
        )
        return [Follow(user, r.followee, r.since, r.copy or 0) for r in rows]

    async def kept_history(self, app: str, user: str) -> list[KeptHistory]:
        rows = await self.db.execute(
            "SELECT followee, since, until, copy FROM {ks}.kept_history WHERE app = %s AND follower = %s", (app, user)
        )
        return [KeptHistory(r.followee, r.since, r.until, r.copy or 0) for r in rows]

    async def page(
        self, app: str, user: str, direction: str, limit: int, cursor: str | None
    ) -> tuple[list[str], str | None]:
        """One page of followers or following, ordered by user id; ``next`` is the last id."""
        if direction == "followers":
            cql = "SELECT follower AS u FROM {ks}.followers WHERE app = %s AND followee = %s"
            col = "follower"
        else:
            cql = "SELECT followee AS u FROM {ks}.following WHERE app = %s AND follower = %s"
            col = "followee"
        params: list[object] = [app, user]
        if cursor:
            cql += f" AND {col} > %s"
            params.append(cursor)
        cql += " LIMIT %s"
        params.append(limit + 1)
        users = [r.u for r in await self.db.execute(cql, params)]
        more = len(users) > limit
        users = users[:limit]
        return users, (users[-1] if more and users else None)

    async def mark_celebrity(self, app: str, user: str, followers: int) -> None:
        await self.db.execute(
            "INSERT INTO {ks}.celebrities (app, user, followers) VALUES (%s, %s, %s)", (app, user, followers)
        )
        await self.redis.sadd(self.keys(app).celebrities(), user)  # type: ignore[misc]  # redis-py: value | Awaitable

    async def celebrities(self, app: str) -> set[str]:
        """Recorded celebrities (sticky: once over the threshold, always pulled at read)."""
        key = self.keys(app).celebrities()
        members: set[str] = await self.redis.smembers(key)  # type: ignore[misc]  # redis-py: value | Awaitable
        if SENTINEL in members:
            members.discard(SENTINEL)
            return members
        rows = await self.db.execute("SELECT user FROM {ks}.celebrities WHERE app = %s", (app,))
        loaded = {r.user for r in rows}
        await self.redis.sadd(key, SENTINEL, *loaded)  # type: ignore[misc]  # redis-py: value | Awaitable
        return loaded

    async def touch_active(self, app: str, user: str, now: float) -> None:
        await self.redis.zadd(self.keys(app).active(), {user: now})

    async def trim_active(self, app: str, before: float) -> int:
        """Drop the active records older than ``before`` (the sweep, every 30 s): they say
        no more than a missing one (:meth:`split_by_activity`), so the set stays bounded
        by the users active in ``fanout.active_days``, not by all users."""
        n: int = await self.redis.zremrangebyscore(self.keys(app).active(), "-inf", f"({before}")
        return n

    async def split_by_activity(
        self, app: str, users: Sequence[str], active_since: float
    ) -> tuple[list[str], list[str]]:
        """Followers seen since ``active_since`` (high priority) and the rest (low)."""
        if not users:
            return [], []
        scores = await self.redis.zmscore(self.keys(app).active(), list(users))
        active: list[str] = []
        inactive: list[str] = []
        for u, s in zip(users, scores):
            (active if s is not None and s >= active_since else inactive).append(u)
        return active, inactive
