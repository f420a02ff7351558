"""The rank index of ranked flat feeds (``ranking = "weighted"``, hub/domain/ranking.py).

A ranked feed is cached exactly like a recency one (the same members in its ``:f``,
trimmed to the newest ``max_length``, rebuilt the same way), plus ``:r`` (the same hash
tag, so one slot): a sorted set of the same ids scored by :func:`~hub.domain.ranking.rank_score`. Every write that
adds an id to the feed adds it to the index too, with a score that never changes, so the
index needs no removals to stay right: an id the feed lost (trimmed, deleted) is skipped
when a page is read, and such leftovers are pruned once the index holds twice the feed's
length. That keeps deletes, trims and rebuilds the recency feed's own, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from hub.config import FeedGroup
from hub.domain.models import Activity
from hub.domain.ranking import rank_score
from hub.storage.redis import Keys
from hub.storage.scripts import RANK_ADD, RANK_PAGE
from hub.storage.slots import by_slot
from hub.storage.trip import Trip


def score_of(group: FeedGroup, activity: Activity) -> float:
    return rank_score(activity.time, activity.extra, group.half_life_hours, group.weights)


def _scores(group: FeedGroup, activities: Sequence[Activity]) -> dict[str, float]:
    return {a.id: score_of(group, a) for a in activities}


class RankIndex:
    def __init__(self, redis: Redis, prefix: str, *, cluster: bool = False, cache_seconds: int = 14 * 86400) -> None:
        self.redis = redis
        self.prefix = prefix
        self.cluster = cluster
        self.cache_seconds = cache_seconds  # the TTL of a feed's keys (fanout.cache_days)
        self._add = redis.register_script(RANK_ADD)
        self._page = redis.register_script(RANK_PAGE)

    def queue_add(self, trip: Trip, k: Keys, group: FeedGroup, feeds: Sequence[str], activity: Activity) -> None:
        """Index an activity in those of ``feeds`` that are cached (after adding it to
        them): a script call per slot (hub/storage/slots.py)."""
        args = [activity.id, repr(score_of(group, activity)), group.max_length]
        for batch in by_slot(self.cluster, feeds, k.feed_tag):
            trip.script(self._add, [x for f in batch for x in (k.feed(f), k.rank(f))], args)

    def queue_fill(self, pipe: Pipeline, k: Keys, group: FeedGroup, feed: str, activities: Sequence[Activity]) -> None:
        """Index a feed being filled, on the caller's pipeline (scores are fixed, so adding
        twice is harmless)."""
        if activities:
            pipe.zadd(k.rank(feed), _scores(group, activities))

    async def fill(self, app: str, group: FeedGroup, feed: str, activities: Sequence[Activity]) -> None:
        """:meth:`queue_fill` in a round trip of its own."""
        if activities:
            pipe = self.redis.pipeline(transaction=False)
            self.queue_fill(pipe, Keys(self.prefix, app), group, feed, activities)
            pipe.expire(Keys(self.prefix, app).rank(feed), self.cache_seconds)
            await pipe.execute()

    async def page(self, app: str, feed: str, limit: int,
                   after: tuple[float, str] | None = None) -> list[tuple[float, str]]:
        """``limit`` entries (score, id) of the feed in rank order, after ``after``."""
        k = Keys(self.prefix, app)
        args: list[str | float] = [limit] if after is None else [limit, repr(after[0]), after[1]]
        flat: list[str] = await self._page(keys=[k.feed(feed), k.rank(feed)], args=args)
        return [(float(flat[i + 1]), flat[i]) for i in range(0, len(flat), 2)]

    async def drop(self, app: str, feed: str) -> None:
        await self.redis.delete(Keys(self.prefix, app).rank(feed))
