"""The hub's stores and settings in one object, built once per process.

Web views and worker jobs receive a :class:`Hub` and call the operations in ``hub.ops``
with it; nothing reaches for globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arq.connections import ArqRedis
from redis.asyncio import Redis

from hub.config import FeedGroup, Settings
from hub.domain.activity import split_feed_id
from hub.domain.ids import IdGenerator
from hub.errors import InvalidRequest, NotFound
from hub.metrics import HubMetrics
from hub.ops.feedpage import VerbTimes
from hub.queue import JobScript
from hub.storage.activities import ActivityStore
from hub.storage.cassandra import Cassandra
from hub.storage.feedcache import FeedCache
from hub.storage.follows import FollowStore
from hub.storage.marks import MarkStore


@dataclass
class Hub:
    settings: Settings
    redis: Redis
    db: Cassandra
    activities: ActivityStore
    follows: FollowStore
    feeds: FeedCache
    marks: MarkStore
    queue: ArqRedis
    jobs: JobScript  # queueing that shares a round trip with other writes
    ids: IdGenerator = field(default_factory=IdGenerator)
    # The process's metrics (hub/metrics.py); a private, unscraped registry if none is given.
    metrics: HubMetrics = field(default_factory=HubMetrics)
    # Parsed verb and time of recently rendered bodies (hub/ops/feedpage.py).
    verb_times: VerbTimes = field(default_factory=VerbTimes)

    @classmethod
    def build(cls, settings: Settings, redis: Redis, db: Cassandra, queue: ArqRedis,
              metrics: HubMetrics | None = None) -> Hub:
        prefix = settings.redis.key_prefix
        return cls(
            settings=settings, redis=redis, db=db, queue=queue,
            activities=ActivityStore(db, redis, prefix),
            follows=FollowStore(db, redis, prefix, cache_days=settings.fanout.cache_days),
            feeds=FeedCache(redis, prefix, cache_days=settings.fanout.cache_days),
            marks=MarkStore(db, redis, prefix, cache_days=settings.fanout.cache_days),
            jobs=JobScript(redis, queue, apart=settings.queue_apart),
            metrics=metrics or HubMetrics(),
        )

    def group(self, name: str) -> FeedGroup:
        g = self.settings.feeds.get(name)
        if g is None:
            raise NotFound(f"no feed group {name!r}", field="group")
        return g

    def feed(self, feed_id: str, field_name: str = "feed") -> tuple[FeedGroup, str]:
        """Split and check ``<group>:<user>``; the group must be configured."""
        group, user = split_feed_id(feed_id, field_name)
        g = self.settings.feeds.get(group)
        if g is None:
            raise InvalidRequest(f"no feed group {group!r}", field=field_name)
        return g, user
