"""Seen and read marks: durable in Cassandra, cached in a Redis hash per feed.

A mark records the newest activity id an entry had when it was marked: an entry is seen
while its newest id is at most its mark or the feed-wide watermark (``*``, set by "mark
all"). An activity joining a group raises the group's newest id above the mark, which is
how a reopened group becomes unseen again without anyone writing a mark.

For a flat feed an entry is one activity (its id never changes); for aggregated and
notification feeds it is a group (``<newest id>|<group id>`` in the order set).

Hash fields: ``!`` (loaded), ``seen:*``, ``read:*``, ``seen:<entry>``, ``read:<entry>``,
``archived:<entry>`` and ``@`` (archived marks may be present): hub/storage/archive.py.

Bounded by the feed, not its history: an individual mark is only ever written for an
entry the feed holds, and every marking drops (in Cassandra and in the cache) the marks
of entries that have left the feed since (trimmed past ``max_length``, emptied, deleted:
:meth:`MarkStore.prune_gone`). So a feed keeps at most its entries' marks per kind, a
count reads at most that many, and a reload after a Redis flush reads as many rows.
An entry that comes back after leaving the feed (a copy of older activities, a rebuild
after deletes) comes back unmarked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from hub.config import FeedGroup
from hub.storage.cassandra import Cassandra
from hub.storage.redis import Keys
from hub.storage.scripts import COUNT, MARKS_GONE
from hub.storage.trip import Trip

KINDS = ("seen", "read")
# The third kind of mark (hub/storage/archive.py), and the hash field saying it may be present.
ARCHIVED = "archived"
ARCHIVED_FLAG = "@"

class MarkStore:
    def __init__(self, db: Cassandra, redis: Redis, prefix: str, *, cache_days: float = 14) -> None:
        self.db = db
        self.redis = redis
        self.prefix = prefix
        # The marks hash is one of the feed's keys: it expires with them (fanout.cache_days,
        # hub/storage/feedcache.py), and a read renews it with them.
        self.cache_seconds = max(1, round(cache_days * 86400))
        self._count = redis.register_script(COUNT)
        self._gone = redis.register_script(MARKS_GONE)

    def keys(self, app: str) -> Keys:
        return Keys(self.prefix, app)

    async def load(self, app: str, feed: str) -> dict[str, str]:
        """All marks of a feed (``kind:entry`` -> mark), loading the cache on a miss."""
        key = self.keys(app).marks(feed)
        marks: dict[str, str] = await self.redis.hgetall(key)  # type: ignore[misc]  # redis-py: value | Awaitable
        if "!" in marks:
            marks.pop("!")
            return marks
        rows = await self.db.execute(
            "SELECT kind, gid, mark FROM {ks}.feed_marks WHERE app = %s AND feed = %s", (app, feed)
        )
        loaded = {f"{r.kind}:{r.gid}": r.mark for r in rows}
        if any(f.startswith(ARCHIVED + ":") for f in loaded):
            loaded[ARCHIVED_FLAG] = "1"  # the default view leaves archived entries out (hub/storage/archive.py)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping={"!": "1", **loaded})
        pipe.expire(key, self.cache_seconds)
        await pipe.execute()
        return loaded

    async def mark(self, app: str, feed: str, kind: str, marks: Mapping[str, str]) -> None:
        """Record ``entry -> newest id`` marks of one kind (``*`` for the watermark)."""
        if not marks:
            return
        await self.load(app, feed)  # make sure the cache is complete before adding to it
        stmts = [
            ("INSERT INTO {ks}.feed_marks (app, feed, kind, gid, mark) VALUES (%s, %s, %s, %s, %s)",
             (app, feed, kind, entry, mark))
            for entry, mark in marks.items()
        ]
        await self.db.batch(stmts, logged=False)
        await self.redis.hset(self.keys(app).marks(feed), mapping={f"{kind}:{e}": m for e, m in marks.items()})  # type: ignore[misc]  # redis-py: value | Awaitable

    async def prune(self, app: str, feed: str, kind: str, entries: Sequence[str]) -> None:
        """Drop individual marks made redundant by a new watermark."""
        if not entries:
            return
        for start in range(0, len(entries), 100):  # batches stay under Cassandra's size warning
            await self.db.batch([
                ("DELETE FROM {ks}.feed_marks WHERE app = %s AND feed = %s AND kind = %s AND gid = %s",
                 (app, feed, kind, e))
                for e in entries[start : start + 100]
            ], logged=False)
        await self.redis.hdel(self.keys(app).marks(feed), *(f"{kind}:{e}" for e in entries))  # type: ignore[misc]  # redis-py: value | Awaitable

    def _count_keys(self, app: str, group: FeedGroup, feed: str) -> list[str]:
        k = self.keys(app)
        if group.is_aggregated:
            return [k.agg(feed), k.marks(feed), k.agg_state(feed)]
        return [k.feed(feed), k.marks(feed), k.feed(feed)]

    async def counts(self, app: str, group: FeedGroup, feed: str) -> dict[str, int]:
        """``{"unseen": n, "unread": n}`` of a feed, loading its marks first."""
        await self.load(app, feed)
        trip = Trip(self.redis)
        self.queue_counts(trip, app, group, feed)
        seen, read = await trip.execute()
        return counts_of(seen, read)

    def queue_counts(self, trip: Trip, app: str, group: FeedGroup, feed: str) -> None:
        """Both counts queued on a trip (two answers, for :func:`counts_of`), marks
        assumed loaded (a count over unloaded marks is too high)."""
        keys, agg = self._count_keys(app, group, feed), "1" if group.is_aggregated else "0"
        for kind in KINDS:
            trip.script(self._count, keys, [kind, agg])

    async def prune_gone(self, app: str, group: FeedGroup, feed: str) -> int:
        """Drop the individual marks of entries the feed no longer holds (module doc),
        durably first, so a reload never brings back what the cache dropped. Returns
        how many went."""
        k = self.keys(app)
        order = k.agg(feed) if group.is_aggregated else k.feed(feed)
        states = k.agg_state(feed) if group.is_aggregated else order
        gone: list[str] = await self._gone(keys=[k.built(feed), order, states, k.marks(feed)],
                                           args=["1" if group.is_aggregated else "0"])
        if not gone:
            return 0
        by_kind: dict[str, list[str]] = {}
        for f in gone:
            kind, entry = f.split(":", 1)
            by_kind.setdefault(kind, []).append(entry)
        for kind, entries in by_kind.items():
            await self.prune(app, feed, kind, entries)
        return len(gone)


def counts_of(seen: Any, read: Any) -> dict[str, int]:
    return {"unseen": max(0, int(seen)), "unread": max(0, int(read))}


def is_marked(marks: Mapping[str, str], kind: str, entry: str, newest: str) -> bool:
    w = marks.get(f"{kind}:*", "")
    return newest <= w or marks.get(f"{kind}:{entry}", "") >= newest
