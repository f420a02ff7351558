"""Feed caches in Redis, written by fan-out inside Redis (Lua), read by the API.

Layout per feed (``Keys.feed_tag(feed)`` = ``<prefix>:{<app>:<feed>}``, a hash tag, so all
of a feed's keys are in one slot of a Redis Cluster, + ...):

- flat feed: ``:f``, a sorted set of activity ids, all scores 0, so it is ordered
  by id (= time) and paged with ZREVRANGEBYLEX;
- aggregated feed (every sorted set with all scores 0, so ordered by member text):

  - ``:ag`` order: ``<newest id>|<group id>`` per group (order and paging);
  - ``:as`` states: hash group id -> ``{"k": key, "c": created_at, "n": newest id}``;
  - ``:am`` members: ``<group id>|<activity id>|<actor>`` for every activity of
    every group, so one group is one contiguous lex range: ZADD answers whether an add
    is new (idempotency), ZLEXCOUNT gives ``activity_count`` and ZREVRANGEBYLEX with
    LIMIT the newest 15, each in O(log n);
  - ``:aa`` actors: ``<group id>|<the actor's newest id in it>|<actor>`` per actor
    of a group: ZLEXCOUNT gives ``actor_count``, ZREVRANGEBYLEX the newest 5 distinct;
  - ``:an`` actor counts: hash ``<group id>|<actor>`` -> ``<newest id>|<count>``,
    so a delete knows whether the actor stays in the group and where its entry in
    ``:aa:`` is;
  - ``:ap`` the first page as last rendered (the page cache, below).

  Why: a group's state used to hold every member (``{"m": {id: actor}}``), so every add
  decoded and encoded it, in time proportional to the group's size (``{verb}:{day}``
  groups grow to thousands; issue 18). Now an add is a constant number of O(log n) calls
  whatever the group's size, and the state stays a few dozen bytes. A delete is O(log n)
  too, except when it removes an actor's newest activity in the group: then the members
  are scanned back to that actor's previous one. Trimming a group (``max_length``) or
  emptying it removes its members, actors and counts with it (O(its size), once).
  Memory is one member per activity held, which exact counts under idempotent re-adds
  need; every other key is bounded by the number of groups (``max_length``).

  These key names are new with the hash tags of issue 21: caches written by an older
  hub are simply not read, so after a deploy each feed is rebuilt from Cassandra when
  next read, as after a flush (the old keys are left to a flush; docs/design.md).

Each order set holds the sentinel member ``!`` (sorts before every id): it means "this
feed is cached, fan-out may write here". Fan-out never creates a feed: a feed that is
not cached is rebuilt from Cassandra when read, which is how Redis stays a cache
(docs/api.md, Guarantees). ``:ok`` is set once a rebuild has finished; a feed
without it is rebuilt again.

Page cache: a hot aggregated read renders 25 group entries from their summaries and
bodies, which cost more CPU in Redis and in the server (building the entries) than
anything else of a read. The rendered first page is therefore kept in ``:ap``
(for ``PAGE_TTL``) without the parts that depend on marks, which are applied at every
read. Every script that changes the feed's groups deletes it, and a reader stores its
page only if no change happened since it read the groups (the read script reserves the
key, a change deletes the reservation). So the page is a function of the groups and
bodies it was rendered from, exactly as a fresh render would be.

Expiry (``fanout.cache_days``): every key of a feed expires together when nobody read the
feed for that long, and a read after that rebuilds it as after a flush. A rebuild gives
its keys the TTL; a write that creates a key of the feed gives it the order set's TTL
(lua/agg_add.lua, lua/rank_add.lua; a flat add creates none), so no key of a feed is
ever left without one; a read whose built flag's TTL has fallen below the refresh point
renews them all (hotread.py). Fan-out never creates a feed, so it never renews one.

On a Redis Cluster a fan-out chunk is split by slot (hub/storage/slots.py): one script
call per slot, sent in one cluster pipeline (a round trip per node); on a single Redis
the chunk is one call, as before.

Guarantees: adds are idempotent (an id is added once per feed), trimming keeps the newest
``max_length`` entries, and one script call is atomic, so concurrent fan-outs interleave
safely.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from redis.asyncio import Redis

from hub.config import FeedGroup
from hub.domain.aggregation import group_id, group_key
from hub.domain.models import Activity, format_time
from hub.storage import scripts
from hub.storage.groupreads import SENTINEL
from hub.storage.hotread import PAGE_TTL, HotRead, HotReads
from hub.storage.rankindex import RankIndex
from hub.storage.redis import Keys
from hub.storage.slots import by_slot
from hub.storage.trip import Trip

__all__ = ["PAGE_TTL", "FeedCache", "HotRead"]
CACHE_DAYS = 14  # fanout.cache_days's default


class FeedCache(HotReads):
    def __init__(self, redis: Redis, prefix: str, *, cache_days: float = CACHE_DAYS) -> None:
        super().__init__(redis, prefix, cache_days=cache_days)
        self._flat_add = redis.register_script(scripts.FLAT_ADD)
        self._agg_add = redis.register_script(scripts.AGG_ADD)
        self._agg_remove = redis.register_script(scripts.AGG_REMOVE)
        self._flat_remove = redis.register_script(scripts.FLAT_REMOVE)
        self.ranks = RankIndex(redis, prefix, cluster=self.cluster, cache_seconds=self.cache_seconds)

    def _slots(self, k: Keys, feeds: Sequence[str]) -> list[list[str]]:
        """The feeds in batches of one slot each (all of them in one on a single Redis)."""
        return by_slot(self.cluster, feeds, k.feed_tag)

    @staticmethod
    def _notify_keys(k: Keys, feed: str) -> tuple[str, str]:
        """The feed's online flag and change stream (hub/storage/changes.py), after its own keys."""
        return k.online(feed), k.changes(feed)

    @staticmethod
    def _notify_args(k: Keys, feeds: Sequence[str]) -> list[str | float]:
        """now, app, then each feed's name and channel (lua/notify.lua)."""
        return [time.time(), k.app, *(x for f in feeds for x in (f, k.channel(f)))]

    def order_key(self, k: Keys, group: FeedGroup, feed: str) -> str:
        return k.agg(feed) if group.is_aggregated else k.feed(feed)

    async def add(self, app: str, group: FeedGroup, feeds: Sequence[str], activity: Activity) -> int:
        """Add one activity to many cached feeds of one group. Returns entries written."""
        return await self.add_many(app, [(group, feeds, activity)])

    async def add_many(self, app: str, items: Sequence[tuple[FeedGroup, Sequence[str], Activity]]) -> int:
        """Several adds (each: one activity into feeds of one group) in one round trip."""
        trip = Trip(self.redis)
        adds = self.queue_adds(trip, app, items)
        results = await trip.execute()
        return sum(int(results[i]) for i in adds)

    def queue_adds(self, trip: Trip, app: str, items: Sequence[tuple[FeedGroup, Sequence[str], Activity]]) -> list[int]:
        """Queue adds on ``trip`` (a script call per slot); returns the indexes of their
        answers (entries written)."""
        k = self.keys(app)
        adds: list[int] = []
        ranked: list[tuple[FeedGroup, Sequence[str], Activity]] = []
        for group, feeds, activity in items:
            if not feeds:
                continue
            if not group.is_aggregated:
                for batch in self._slots(k, feeds):
                    keys = [x for f in batch for x in (k.feed(f), *self._notify_keys(k, f))]
                    args = [activity.id, group.max_length, *self._notify_args(k, batch)]
                    adds.append(trip.script(self._flat_add, keys, args))
                if group.is_ranked:
                    ranked.append((group, feeds, activity))
                continue
            gkey = group_key(group.aggregate or "{verb}", activity)
            for batch in self._slots(k, feeds):
                keys = [x for f in batch for x in (*self.group_keys(k, f), *self._notify_keys(k, f))]
                args = [activity.id, activity.actor, format_time(activity.time), gkey, group_id(gkey),
                        group.max_length, *self._notify_args(k, batch)]
                adds.append(trip.script(self._agg_add, keys, args))
        for group, feeds, activity in ranked:  # after the adds: only feeds that hold it are indexed
            self.ranks.queue_add(trip, k, group, feeds, activity)
        return adds

    async def remove(self, app: str, group: FeedGroup, feeds: Sequence[str], activity: Activity) -> int:
        """Remove one activity from many feeds of one group (a call per slot, one round
        trip). Returns how many held it."""
        if not feeds:
            return 0
        k = self.keys(app)
        trip = Trip(self.redis)
        gid = group_id(group_key(group.aggregate or "{verb}", activity))
        for batch in self._slots(k, feeds):
            if not group.is_aggregated:
                keys = [x for f in batch for x in (k.feed(f), *self._notify_keys(k, f))]
                trip.script(self._flat_remove, keys, [activity.id, *self._notify_args(k, batch)])
            else:
                keys = [x for f in batch for x in (*self.group_keys(k, f), *self._notify_keys(k, f))]
                trip.script(self._agg_remove, keys, [activity.id, activity.actor, gid, *self._notify_args(k, batch)])
        return sum(int(n) for n in await trip.execute())

    async def fill(self, app: str, group: FeedGroup, feed: str, activities: Sequence[Activity]) -> None:
        """Replay activities (oldest first) into one feed being rebuilt, in one round trip."""
        k = self.keys(app)
        trip = Trip(self.redis)
        pipe = trip.pipe
        if not group.is_aggregated:
            for start in range(0, len(activities), 1000):
                pipe.zadd(k.feed(feed), {a.id: 0 for a in activities[start : start + 1000]})
            pipe.zremrangebyrank(k.feed(feed), 1, -(group.max_length + 1))
            if group.is_ranked and activities:
                self.ranks.queue_fill(pipe, k, group, feed, activities)
                pipe.expire(k.rank(feed), self.cache_seconds)  # the index may be new
        else:
            keys = self.group_keys(k, feed)
            for a in activities:
                gkey = group_key(group.aggregate or "{verb}", a)
                args: list[str | int] = [a.id, a.actor, format_time(a.time), gkey, group_id(gkey), group.max_length]
                trip.script(self._agg_add, keys, args)
        await trip.execute()

    async def fill_ids(self, app: str, group: FeedGroup, feed: str, ids: Sequence[str]) -> None:
        """:meth:`fill` for a flat feed from ids alone (a flat feed holds nothing else)."""
        k = self.keys(app)
        pipe = self.redis.pipeline(transaction=False)
        for start in range(0, len(ids), 1000):
            pipe.zadd(k.feed(feed), {i: 0 for i in ids[start : start + 1000]})
        pipe.zremrangebyrank(k.feed(feed), 1, -(group.max_length + 1))
        await pipe.execute()

    async def start_build(self, app: str, group: FeedGroup, feed: str) -> None:
        """Open a feed to fan-out before reading its sources, so nothing falls in between.
        A new order set gets the feed's TTL at once: a rebuild that dies leaves nothing
        untimed."""
        k = self.keys(app)
        order = self.order_key(k, group, feed)
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(k.built(feed), k.agg_page(feed))
        pipe.zadd(order, {SENTINEL: 0})
        pipe.expire(order, self.cache_seconds, nx=True)  # a set still there keeps its feed's expiry
        await pipe.execute()

    async def finish_build(self, app: str, feed: str) -> None:
        """Mark the feed built, and every key of it timed (fanout.cache_days), all to
        expire at the same instant (:meth:`queue_touch`)."""
        pipe = self.redis.pipeline(transaction=False)
        self.queue_touch(pipe, app, feed, built=True)
        await pipe.execute()

    async def is_built(self, app: str, group: FeedGroup, feed: str) -> bool:
        k = self.keys(app)
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(k.built(feed))
        pipe.zscore(self.order_key(k, group, feed), SENTINEL)
        built, sentinel = await pipe.execute()
        return bool(built) and sentinel is not None

    async def drop(self, app: str, feed: str) -> None:
        await self.drop_many(app, [feed])

    async def drop_many(self, app: str, feeds: Sequence[str]) -> None:
        """Take feeds out of the cache, in one round trip: each is rebuilt from Cassandra
        when next read. One DEL per feed (a feed's keys share a slot)."""
        k = self.keys(app)
        pipe = self.redis.pipeline(transaction=False)
        for feed in feeds:
            pipe.delete(k.built(feed), k.feed(feed), k.rank(feed), *self.group_keys(k, feed))
        await pipe.execute()

    async def flat_ids(self, app: str, feed: str, limit: int, before: str | None = None) -> list[str]:
        top = f"({before}" if before else "+"
        ids: list[str] = await self.redis.zrevrangebylex(self.keys(app).feed(feed), top, f"({SENTINEL}", 0, limit)
        return ids

    async def count(self, app: str, group: FeedGroup, feed: str) -> int:
        n: int = await self.redis.zcard(self.order_key(self.keys(app), group, feed))
        return max(0, n - 1)
