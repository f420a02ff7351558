"""Redis clients and key naming.

Redis is a cache and a transport (docs/api.md, Guarantees): everything here can be rebuilt
from Cassandra. Every key starts with ``<prefix>:<app>:`` so several hubs or test runs
share one server without flushing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# The client (a single Redis or a Redis Cluster) is built in hub/storage/redisclient.py.
from hub.storage.redisclient import Client, connect, is_cluster

# Redis does not answer, or (a cluster) a failover outlasted the client's retries
# (redisclient.CLUSTER_DOWN, spelled out: mypy wants a fixed tuple in ``except (*X, ...)``).
REDIS_DOWN = (
    RedisConnectionError, RedisTimeoutError, OSError,
    ClusterDownError, TryAgainError, SlotNotCoveredError, RedisClusterException,
)

__all__ = ["REDIS_DOWN", "Client", "Keys", "connect", "is_cluster"]


@dataclass(frozen=True)
class Keys:
    """Key names for one app. Built once per app and reused."""

    prefix: str
    app: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{self.app}"

    def feed_tag(self, feed: str) -> str:
        """``<prefix>:{<app>:<feed>}``: the start of every key of one feed (issue 21, Redis
        Cluster). The braces are a hash tag, so all of a feed's keys, and its change
        channel, live in one slot and a script may touch them together."""
        return f"{self.prefix}:{{{self.app}:{feed}}}"

    def changes(self, feed: str) -> str:
        """The feed's change stream (hub/storage/changes.py): cursors for gapless resume."""
        return f"{self.feed_tag(feed)}:cs"

    def online(self, feed: str) -> str:
        """Present (with a TTL) while a socket follows the feed (hub/storage/changes.py)."""
        return f"{self.feed_tag(feed)}:on"

    def channel(self, feed: str) -> str:
        """The feed's change channel (sharded pub/sub: SPUBLISH/SSUBSCRIBE)."""
        return f"{self.feed_tag(feed)}:ch"

    def feed(self, feed: str) -> str:
        """Flat feed cache: lex-sorted set of activity ids (all scores 0)."""
        return f"{self.base}:f:{feed}"

    def rank(self, feed: str) -> str:
        """Ranked flat feed's index: its ids scored by rank (hub.storage.rankindex)."""
        return f"{self.base}:r:{feed}"

    # Aggregated feeds (layout: hub.storage.feedcache). Named "a?" since the layout of
    # issue 18; the older ":g:", ":gs:", ":gp:" keys are never read (see legacy_agg).
    def agg(self, feed: str) -> str:
        """Aggregated feed order: lex-sorted set of "<newest id>|<group id>"."""
        return f"{self.base}:ag:{feed}"

    def agg_state(self, feed: str) -> str:
        """Hash group id -> small JSON state ``{"k", "c", "n"}`` (bounded per group)."""
        return f"{self.base}:as:{feed}"

    def agg_members(self, feed: str) -> str:
        """Lex-sorted set of "<group id>|<activity id>|<actor>": every member of every group."""
        return f"{self.base}:am:{feed}"

    def agg_actors(self, feed: str) -> str:
        """Lex-sorted set of "<group id>|<actor's newest id in the group>|<actor>"."""
        return f"{self.base}:aa:{feed}"

    def agg_actor_counts(self, feed: str) -> str:
        """Hash "<group id>|<actor>" -> "<actor's newest id>|<its activities in the group>"."""
        return f"{self.base}:an:{feed}"

    def agg_page(self, feed: str) -> str:
        """The aggregated feed's first page, rendered (hub.storage.feedcache, page cache)."""
        return f"{self.base}:ap:{feed}"

    def legacy_agg(self, feed: str) -> list[str]:
        """The keys of the layout before issue 18 (group states holding every member):
        not read any more, deleted when the feed is rebuilt or dropped."""
        return [f"{self.base}:g:{feed}", f"{self.base}:gs:{feed}", f"{self.base}:gp:{feed}"]

    def built(self, feed: str) -> str:
        """Set once a feed's cache was rebuilt completely from Cassandra."""
        return f"{self.base}:ok:{feed}"

    def marks(self, feed: str) -> str:
        """Seen/read marks of a feed (see hub.storage.marks)."""
        return f"{self.base}:mk:{feed}"

    def activity(self, activity_id: str) -> str:
        return f"{self.base}:a:{activity_id}"

    def followers(self, user: str) -> str:
        return f"{self.base}:fr:{user}"

    def followers_changes(self, user: str) -> str:
        """Counts the follows and unfollows of ``user`` (see hub.storage.follows)."""
        return f"{self.base}:frc:{user}"

    def following(self, user: str) -> str:
        return f"{self.base}:fg:{user}"

    def active(self) -> str:
        """Sorted set user -> last time (unix seconds) they read or connected."""
        return f"{self.base}:active"

    def celebrities(self) -> str:
        return f"{self.base}:celebs"

    def foreign_id(self, foreign_id: str) -> str:
        return f"{self.base}:fid:{foreign_id}"

    def webhook(self, webhook_id: str) -> str:
        return f"{self.base}:wh:{webhook_id}"

    def rate(self) -> str:
        return f"{self.base}:rate"
