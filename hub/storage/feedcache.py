"""Feed caches in Redis, written by fan-out inside Redis (Lua), read by the API.

Layout per feed (``Keys.base`` + ...):

- flat feed: ``:f:<feed>``, a sorted set of activity ids, all scores 0, so it is ordered
  by id (= time) and paged with ZREVRANGEBYLEX;
- aggregated feed (every sorted set with all scores 0, so ordered by member text):

  - ``:ag:<feed>`` order: ``<newest id>|<group id>`` per group (order and paging);
  - ``:as:<feed>`` states: hash group id -> ``{"k": key, "c": created_at, "n": newest id}``;
  - ``:am:<feed>`` members: ``<group id>|<activity id>|<actor>`` for every activity of
    every group, so one group is one contiguous lex range: ZADD answers whether an add
    is new (idempotency), ZLEXCOUNT gives ``activity_count`` and ZREVRANGEBYLEX with
    LIMIT the newest 15, each in O(log n);
  - ``:aa:<feed>`` actors: ``<group id>|<the actor's newest id in it>|<actor>`` per actor
    of a group: ZLEXCOUNT gives ``actor_count``, ZREVRANGEBYLEX the newest 5 distinct;
  - ``:an:<feed>`` actor counts: hash ``<group id>|<actor>`` -> ``<newest id>|<count>``,
    so a delete knows whether the actor stays in the group and where its entry in
    ``:aa:`` is;
  - ``:ap:<feed>`` the first page as last rendered (the page cache, below).

  Why: a group's state used to hold every member (``{"m": {id: actor}}``), so every add
  decoded and encoded it, in time proportional to the group's size (``{verb}:{day}``
  groups grow to thousands; issue 18). Now an add is a constant number of O(log n) calls
  whatever the group's size, and the state stays a few dozen bytes. A delete is O(log n)
  too, except when it removes an actor's newest activity in the group: then the members
  are scanned back to that actor's previous one. Trimming a group (``max_length``) or
  emptying it removes its members, actors and counts with it (O(its size), once).
  Memory is one member per activity held, which exact counts under idempotent re-adds
  need; every other key is bounded by the number of groups (``max_length``).

  These key names are new with this layout: caches written by an older hub (``:g:``,
  ``:gs:``, ``:gp:``) are simply not read, so after a deploy each aggregated feed is
  rebuilt from Cassandra when next read, as after a flush; a rebuild or drop deletes the
  old keys of that feed (``Keys.legacy_agg``).

Each order set holds the sentinel member ``!`` (sorts before every id): it means "this
feed is cached, fan-out may write here". Fan-out never creates a feed: a feed that is
not cached is rebuilt from Cassandra when read, which is how Redis stays a cache
(docs/api.md, Guarantees). ``:ok:<feed>`` is set once a rebuild has finished; a feed
without it is rebuilt again.

Page cache: a hot aggregated read renders 25 group entries from their summaries and
bodies, which cost more CPU in Redis and in the server (building the entries) than
anything else of a read. The rendered first page is therefore kept in ``:ap:<feed>``
(for ``PAGE_TTL``) without the parts that depend on marks, which are applied at every
read. Every script that changes the feed's groups deletes it, and a reader stores its
page only if no change happened since it read the groups (the read script reserves the
key, a change deletes the reservation). So the page is a function of the groups and
bodies it was rendered from, exactly as a fresh render would be.

Guarantees: adds are idempotent (an id is added once per feed), trimming keeps the newest
``max_length`` entries, and one script call is atomic, so concurrent fan-outs interleave
safely.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from hub.background import Background
from hub.config import FeedGroup
from hub.domain.aggregation import MAX_ACTORS, group_id, group_key
from hub.domain.models import Activity, format_time
from hub.storage import scripts
from hub.storage.groupreads import SENTINEL, GroupReads, GroupSummary, parse_summaries
from hub.storage.rankindex import RankIndex
from hub.storage.redis import Keys
from hub.storage.scriptbatch import ScriptBatch
from hub.storage.trip import Trip

PAGE_TTL = 300  # seconds: the pages of users who read often stay; the others' memory is given back


@dataclass(frozen=True)
class HotRead:
    """What :meth:`FeedCache.read` found: ``missing`` names what to load before asking
    again ("feed", "marks", "celebrities"), else the page and its counts."""

    missing: str | None
    page: str | None  # the rendered first page (aggregated feeds), when current; else the fields below
    ids: list[str]
    groups: list[GroupSummary]
    bodies: dict[str, str]
    marks: dict[str, str]
    unseen: int
    unread: int
    celebrities: set[str]
    archived: bool = False  # the feed may hold archived entries (hub/storage/archive.py)


_MISSING = {0: "feed", 1: "marks", 2: "celebrities"}


class FeedCache(GroupReads):
    def __init__(self, redis: Redis, prefix: str) -> None:
        super().__init__(redis, prefix)
        self._flat_add = redis.register_script(scripts.FLAT_ADD)
        self._agg_add = redis.register_script(scripts.AGG_ADD)
        self._agg_remove = redis.register_script(scripts.AGG_REMOVE)
        self._flat_remove = redis.register_script(scripts.FLAT_REMOVE)
        self._read = redis.register_script(scripts.READ)
        self._read_batch = ScriptBatch(redis, self._read)  # concurrent reads share a round trip
        self._store_page = ScriptBatch(redis, redis.register_script(scripts.STORE_PAGE))
        self._keeping = Background()  # pages being stored
        self.ranks = RankIndex(redis, prefix)

    @staticmethod
    def _notify_args(k: Keys) -> list[str | float]:
        """now, app and the head of the feeds' hash tag (lua/notify.lua's notify_feed)."""
        return [time.time(), k.app, k.feed_tag("")[:-1]]

    @staticmethod
    def _notify_keys(k: Keys, feed: str) -> list[str]:
        """The feed's online flag and change stream (hub/storage/changes.py), after its own keys."""
        return [k.online(feed), k.changes(feed)]

    @staticmethod
    def group_keys(k: Keys, feed: str) -> list[str]:
        """An aggregated feed's keys, in the scripts' order: order, states, members,
        actors, actor counts, rendered page (module doc)."""
        return [k.agg(feed), k.agg_state(feed), k.agg_members(feed), k.agg_actors(feed), k.agg_actor_counts(feed),
                k.agg_page(feed)]

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
        """Queue adds on ``trip``; returns the indexes of their answers (entries written)."""
        k = self.keys(app)
        adds: list[int] = []
        ranked: list[tuple[FeedGroup, Sequence[str], Activity]] = []
        for group, feeds, activity in items:
            if not feeds:
                continue
            if not group.is_aggregated:
                args0 = [activity.id, group.max_length, *self._notify_args(k)]
                keys0 = [x for f in feeds for x in (k.feed(f), *self._notify_keys(k, f))]
                adds.append(trip.script(self._flat_add, keys0, args0))
                if group.is_ranked:
                    ranked.append((group, feeds, activity))
                continue
            gkey = group_key(group.aggregate or "{verb}", activity)
            keys = [x for f in feeds for x in (*self.group_keys(k, f), *self._notify_keys(k, f))]
            args = [activity.id, activity.actor, format_time(activity.time), gkey, group_id(gkey),
                    group.max_length, *self._notify_args(k)]
            adds.append(trip.script(self._agg_add, keys, args))
        for group, feeds, activity in ranked:  # after the adds: only feeds that hold it are indexed
            self.ranks.queue_add(trip, k, group, feeds, activity)
        return adds

    async def remove(self, app: str, group: FeedGroup, feeds: Sequence[str], activity: Activity) -> int:
        if not feeds:
            return 0
        k = self.keys(app)
        if not group.is_aggregated:
            keys = [x for f in feeds for x in (k.feed(f), *self._notify_keys(k, f))]
            return int(await self._flat_remove(keys=keys, args=[activity.id, *self._notify_args(k)]))
        gid = group_id(group_key(group.aggregate or "{verb}", activity))
        keys = [x for f in feeds for x in (*self.group_keys(k, f), *self._notify_keys(k, f))]
        args = [activity.id, activity.actor, gid, *self._notify_args(k)]
        return int(await self._agg_remove(keys=keys, args=args))

    async def fill(self, app: str, group: FeedGroup, feed: str, activities: Sequence[Activity]) -> None:
        """Replay activities (oldest first) into one feed being rebuilt, in one round trip."""
        k = self.keys(app)
        pipe = self.redis.pipeline(transaction=False)
        if not group.is_aggregated:
            for start in range(0, len(activities), 1000):
                pipe.zadd(k.feed(feed), {a.id: 0 for a in activities[start : start + 1000]})
            pipe.zremrangebyrank(k.feed(feed), 1, -(group.max_length + 1))
            if group.is_ranked:
                self.ranks.queue_fill(pipe, k, group, feed, activities)
        else:
            keys = self.group_keys(k, feed)
            for a in activities:
                gkey = group_key(group.aggregate or "{verb}", a)
                args: list[str | int] = [a.id, a.actor, format_time(a.time), gkey, group_id(gkey), group.max_length]
                await self._agg_add(keys=keys, args=args, client=pipe)
        await pipe.execute()

    async def fill_ids(self, app: str, group: FeedGroup, feed: str, ids: Sequence[str]) -> None:
        """:meth:`fill` for a flat feed from ids alone (a flat feed holds nothing else)."""
        k = self.keys(app)
        pipe = self.redis.pipeline(transaction=False)
        for start in range(0, len(ids), 1000):
            pipe.zadd(k.feed(feed), {i: 0 for i in ids[start : start + 1000]})
        pipe.zremrangebyrank(k.feed(feed), 1, -(group.max_length + 1))
        await pipe.execute()

    async def start_build(self, app: str, group: FeedGroup, feed: str) -> None:
        """Open a feed to fan-out before reading its sources, so nothing falls in between."""
        k = self.keys(app)
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(k.built(feed), k.agg_page(feed))
        if group.is_aggregated:
            pipe.delete(*k.legacy_agg(feed))  # an older hub's cache of it, never read again
        pipe.zadd(self.order_key(k, group, feed), {SENTINEL: 0})
        await pipe.execute()

    async def finish_build(self, app: str, feed: str) -> None:
        await self.redis.set(self.keys(app).built(feed), "1")

    async def is_built(self, app: str, group: FeedGroup, feed: str) -> bool:
        k = self.keys(app)
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(k.built(feed))
        pipe.zscore(self.order_key(k, group, feed), SENTINEL)
        built, sentinel = await pipe.execute()
        return bool(built) and sentinel is not None

    async def drop(self, app: str, feed: str) -> None:
        k = self.keys(app)
        await self.redis.delete(k.built(feed), k.feed(feed), k.rank(feed), *self.group_keys(k, feed),
                                *k.legacy_agg(feed))

    async def flat_ids(self, app: str, feed: str, limit: int, before: str | None = None) -> list[str]:
        top = f"({before}" if before else "+"
        ids: list[str] = await self.redis.zrevrangebylex(self.keys(app).feed(feed), top, f"({SENTINEL}", 0, limit)
        return ids

    async def read(self, app: str, group: FeedGroup, feed: str, user: str, limit: int, before: str | None,
                   bodies: int, body_prefix: str, per_group: int, pulls: bool, actors: int = MAX_ACTORS,
                   page_token: str = "") -> HotRead:
        """One page (``limit`` entries) with counts, marks and celebrities, in one round trip.

        Also records the user as active. Bodies come with the first ``bodies`` ids, or
        the newest ``per_group`` activities of the first ``bodies`` groups. With a
        ``page_token`` (an aggregated feed's first page), the rendered page when it is
        current, else the key is reserved for :meth:`keep_page` with that token.
        """
        k = self.keys(app)
        agg = group.is_aggregated
        order = self.order_key(k, group, feed)
        keys = [k.built(feed), order, k.agg_state(feed) if agg else order, k.marks(feed), k.active(), k.celebrities(),
                *([k.agg_page(feed), k.agg_members(feed), k.agg_actors(feed)] if agg else [order] * 3)]
        args = ["1" if agg else "0", f"({before}" if before else "+", limit, bodies, body_prefix, per_group, user,
                time.time(), "1" if pulls else "0", actors, page_token if agg else ""]
        r: list[Any] = await self._read_batch(keys, args)
        if r[0] == 4:
            _, page, marks, unseen, unread, celebs, archived = r
            it = iter(marks)
            return HotRead(None, page, [], [], {}, dict(zip(it, it)), max(0, int(unseen)), max(0, int(unread)),
                           set(celebs), archived == 1)
        if r[0] != 3:
            return HotRead(_MISSING[r[0]], None, [], [], {}, {}, 0, 0, set())
        _, members, second, ids, raws, marks, unseen, unread, celebs, archived = r
        groups = parse_summaries(second) if agg else []
        it = iter(marks)
        return HotRead(None, None, members if not agg else [], groups,
                       {i: b for i, b in zip(ids, raws) if b is not None}, dict(zip(it, it)),
                       max(0, int(unseen)), max(0, int(unread)), set(celebs), archived == 1)

    def keep_page(self, app: str, feed: str, token: str, text: str) -> None:
        """Keep a rendered first page, unless the feed changed since the read that reserved it.

        Sent in the background: the answer need not wait for a second round trip, and a
        store that fails only means that the next read renders the page again.
        """
        self._keeping.spawn(self._keep_page(self.keys(app).agg_page(feed), token, text))

    async def _keep_page(self, key: str, token: str, text: str) -> None:
        try:
            await self._store_page([key], [token, text, PAGE_TTL])
        except Exception:  # not worth a log line (see keep_page)
            pass

    async def count(self, app: str, group: FeedGroup, feed: str) -> int:
        n: int = await self.redis.zcard(self.order_key(self.keys(app), group, feed))
        return max(0, n - 1)

