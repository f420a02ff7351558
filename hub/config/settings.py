"""The configuration's shape: frozen dataclasses, one per ``config.toml`` table, and Settings.

The defaults here are what a missing key means; :mod:`hub.config.loader` reads the file
and the environment into these.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"
    # Every key the hub writes starts with this, so several hubs (or test runs) share a
    # server. Unless set, derived from the keyspace (:func:`prefix_for`); a hub refuses to
    # start when its prefix is bound to another keyspace (hub/storage/binding.py).
    key_prefix: str = "hub"
    # True: ``url`` names one node of a Redis Cluster (hub/storage/redis.py connects a
    # RedisCluster); ``nodes`` ("host:port") are more start-up nodes, so a client starting
    # while the url's node is down or a replica still finds the cluster.
    cluster: bool = False
    nodes: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlparse(self.url).port or 6379


@dataclass(frozen=True)
class QueueSettings:
    """Where arq's job queues live. ``url`` None: on the main Redis (``redis.url``).
    ``redis+sentinel://host:port[,host:port]/mastername[/db]``: the master that Sentinel
    names (arq supports plain Redis and Sentinel, never a Redis Cluster)."""

    url: str | None = None

    @property
    def sentinel(self) -> tuple[tuple[tuple[str, int], ...], str, int] | None:
        """(sentinel addresses, master name, db) of a ``redis+sentinel://`` url, else None."""
        if self.url is None or not self.url.startswith("redis+sentinel://"):
            return None
        netloc, _, path = self.url.removeprefix("redis+sentinel://").partition("/")
        hosts = []
        for part in netloc.rpartition("@")[2].split(","):
            host, _, port = part.rpartition(":")
            hosts.append((host or part, int(port) if host and port.isdigit() else 26379))
        master, _, db = path.partition("/")
        return tuple(hosts), master, int(db) if db.isdigit() else 0


@dataclass(frozen=True)
class CassandraSettings:
    hosts: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    keyspace: str = "hub"
    replication_factor: int = 1
    # 3 speaks to Cassandra 2.1; newer clusters negotiate up when this is None.
    protocol_version: int | None = 3
    request_timeout: float = 5.0
    # The level of every read and write; None means the default of :attr:`level`.
    consistency: str | None = None
    # The datacenter routing prefers; None: the one of the first contact point that answers.
    local_dc: str | None = None
    # NetworkTopologyStrategy's factor per datacenter, such as (("dc1", 3), ("dc2", 3));
    # empty: SimpleStrategy with ``replication_factor``.
    replication: tuple[tuple[str, int], ...] = ()

    @property
    def level(self) -> str:
        """The consistency of every statement: the configured one, else ``local_quorum``
        when every datacenter keeps 3 copies or more (R + W > RF with one node down), else
        ``one`` (with 1 or 2 copies a quorum would stop at the first node down)."""
        if self.consistency is not None:
            return self.consistency
        copies = min(f for _, f in self.replication) if self.replication else self.replication_factor
        return "local_quorum" if copies >= 3 else "one"


@dataclass(frozen=True)
class FanoutSettings:
    chunk_size: int = 100
    celebrity_threshold: int = 10_000
    active_days: int = 7
    # Feed caches nobody read for this many days expire with all their keys (docs/design.md).
    cache_days: float = 14.0


@dataclass(frozen=True)
class WorkerSettings:
    # A job killed with its worker is re-run after this many seconds (arq's in-progress
    # key expires with the job timeout), so keep it short: fan-out chunks are small.
    job_timeout: int = 5
    max_tries: int = 20
    max_jobs: int = 20
    poll_delay: float = 0.05


@dataclass(frozen=True)
class AppSettings:
    id: str
    secret: str
    allowed_origins: tuple[str, ...] = ()
    # Token bucket for signed app calls: ``rate`` requests a second, bursts up to ``burst``.
    rate: float = 2000.0
    burst: int = 4000

    @property
    def key(self) -> bytes:
        """The signing key: the bytes behind ``whsec_`` (Standard Webhooks)."""
        return base64.b64decode(self.secret.removeprefix("whsec_"))


@dataclass(frozen=True)
class FeedGroup:
    name: str
    kind: str = "flat"
    follows: str | None = None
    max_length: int = 1000
    aggregate: str | None = None
    ranking: str = "recency"  # or "weighted" (flat groups): hub/domain/ranking.py
    half_life_hours: float = 24.0
    weights: tuple[tuple[str, float], ...] = ()  # extra field -> weight

    @property
    def is_aggregated(self) -> bool:
        return self.kind in ("aggregated", "notification")

    @property
    def is_ranked(self) -> bool:
        return self.ranking == "weighted"

    def feed_of(self, user: str) -> str:
        """The id of ``user``'s feed of this group (``<group>:<user>``), as stored and pushed."""
        return f"{self.name}:{user}"


@dataclass(frozen=True)
class ServicesSettings:
    """Where ``hub services`` keeps what it installs (cache) and runs (state)."""

    state_dir: Path = Path(".hub")
    cache_dir: Path = Path.home() / ".cache" / "hub"
    cassandra_heap_mb: int = 512


CONSISTENCY_LEVELS = ("one", "quorum", "local_quorum", "local_one", "all")


def prefix_for(keyspace: str) -> str:
    """The default Redis key prefix of a keyspace: ``hub`` for the keyspace ``hub`` (the
    prefix every hub had before it was derived), ``hub-<keyspace>`` for any other, so hubs
    on different keyspaces never share queues or caches unless told to."""
    return "hub" if keyspace == "hub" else f"hub-{keyspace}"


DEFAULT_FEEDS: dict[str, FeedGroup] = {
    "user": FeedGroup("user", "flat", None, 1000),
    "timeline": FeedGroup("timeline", "flat", "user", 1000),
    "timeline_aggregated": FeedGroup("timeline_aggregated", "aggregated", "user", 1000, "{verb}:{day}"),
    "notification": FeedGroup("notification", "notification", None, 1000, "{verb}:{object}:{day}"),
}


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    cassandra: CassandraSettings = field(default_factory=CassandraSettings)
    fanout: FanoutSettings = field(default_factory=FanoutSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    services: ServicesSettings = field(default_factory=ServicesSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    apps: Mapping[str, AppSettings] = field(default_factory=dict)
    feeds: Mapping[str, FeedGroup] = field(default_factory=lambda: dict(DEFAULT_FEEDS))

    @property
    def queue_url(self) -> str:
        """The url of the Redis that holds the job queues: ``[queue] url``, else ``redis.url``."""
        return self.queue.url or self.redis.url

    @property
    def queue_apart(self) -> bool:
        """True when the job queues live on another Redis than the feeds and follower sets."""
        return self.queue_url != self.redis.url

    def follower_groups(self, source: str = "user") -> tuple[FeedGroup, ...]:
        """The groups that receive fan-out from a followee's ``source`` group."""
        return tuple(g for g in self.feeds.values() if g.follows == source)
