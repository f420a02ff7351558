"""Redis clients and key naming.

Redis is a cache and a transport (docs/api.md, Guarantees): everything here can be rebuilt
from Cassandra. Every key starts with ``<prefix>:`` and names its app, so several hubs or
test runs share one server without flushing each other. Keys that a script or a
multi-key command uses together share a hash tag (``{...}``), so on a Redis Cluster they
are in one slot: a feed's keys ``<prefix>:{<app>:<feed>}:...``, a user's follower cache
``<prefix>:{<app>/u/<user>}:...``, the app's admission keys ``<prefix>:{<app>}:...``;
activity bodies ``<prefix>:<app>:a:<id>`` are untagged (spread over slots, read by slot).
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

    def patterns(self) -> list[str]:
        """SCAN patterns that together match every key of the app (tools and tests)."""
        p, a = self.prefix, self.app
        return [f"{p}:{a}:*", f"{p}:{{{a}:*", f"{p}:{{{a}/u/*", f"{p}:{{{a}}}:*"]

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
        return f"{self.feed_tag(feed)}:f"

    def rank(self, feed: str) -> str:
        """Ranked flat feed's index: its ids scored by rank (hub.storage.rankindex)."""
        return f"{self.feed_tag(feed)}:r"

    # Aggregated feeds (layout: hub.storage.feedcache). The names of issue 21 (hash tags)
    # differ from every older layout's, so an older hub's keys are never read.
    def agg(self, feed: str) -> str:
        """Aggregated feed order: lex-sorted set of "<newest id>|<group id>"."""
        return f"{self.feed_tag(feed)}:ag"

    def agg_state(self, feed: str) -> str:
        """Hash group id -> small JSON state ``{"k", "c", "n"}`` (bounded per group)."""
        return f"{self.feed_tag(feed)}:as"

    def agg_members(self, feed: str) -> str:
        """Lex-sorted set of "<group id>|<activity id>|<actor>": every member of every group."""
        return f"{self.feed_tag(feed)}:am"

    def agg_actors(self, feed: str) -> str:
        """Lex-sorted set of "<group id>|<actor's newest id in the group>|<actor>"."""
        return f"{self.feed_tag(feed)}:aa"

    def agg_actor_counts(self, feed: str) -> str:
        """Hash "<group id>|<actor>" -> "<actor's newest id>|<its activities in the group>"."""
        return f"{self.feed_tag(feed)}:an"

    def agg_page(self, feed: str) -> str:
        """The aggregated feed's first page, rendered (hub.storage.feedcache, page cache)."""
        return f"{self.feed_tag(feed)}:ap"

    def built(self, feed: str) -> str:
        """Set once a feed's cache was rebuilt completely from Cassandra."""
        return f"{self.feed_tag(feed)}:ok"

    def marks(self, feed: str) -> str:
        """Seen/read marks of a feed (see hub.storage.marks)."""
        return f"{self.feed_tag(feed)}:mk"

    def activity(self, activity_id: str) -> str:
        """A cached activity body: untagged, so bodies spread over every slot (read by slot)."""
        return f"{self.base}:a:{activity_id}"

    def user_tag(self, user: str) -> str:
        """``<prefix>:{<app>/u/<user>}``: the start of one user's follower-cache keys."""
        return f"{self.prefix}:{{{self.app}/u/{user}}}"

    def followers(self, user: str) -> str:
        return f"{self.user_tag(user)}:fr"

    def followers_changes(self, user: str) -> str:
        """Counts the follows and unfollows of ``user`` (see hub.storage.follows)."""
        return f"{self.user_tag(user)}:frc"

    def following(self, user: str) -> str:
        return f"{self.user_tag(user)}:fg"

    # App-wide keys, all under the app's own tag ``<prefix>:{<app>}``: the admission keys
    # (replay, claims, bucket, complete-since) go together into one GATE call.
    @property
    def app_tag(self) -> str:
        return f"{self.prefix}:{{{self.app}}}"

    def active(self) -> str:
        """Sorted set user -> last time (unix seconds) they read or connected (no script
        touches it; trimmed by the sweep, hub.storage.follows.FollowStore.trim_active)."""
        return f"{self.app_tag}:active"

    def celebrities(self) -> str:
        return f"{self.app_tag}:celebs"

    def foreign_id(self, foreign_id: str) -> str:
        return f"{self.app_tag}:fid:{foreign_id}"

    def webhook(self, webhook_id: str) -> str:
        return f"{self.app_tag}:wh:{webhook_id}"

    def rate(self) -> str:
        return f"{self.app_tag}:rate"

    def complete_since(self) -> str:
        """Since when Redis holds every answer of the app (web/signed.py, the gate's KEYS[3])."""
        return f"{self.app_tag}:wh-complete-since"
