"""The hub's Redis client: one Redis, or a Redis Cluster when ``[redis] cluster`` is true.

On a cluster, redis-py's ``RedisCluster`` follows MOVED and ASK by itself and retries
TRYAGAIN and CLUSTERDOWN (a failover in progress) with a short sleep, up to
``CLUSTER_RETRIES`` times; what still fails is raised as one of :data:`CLUSTER_DOWN`,
which hub/storage/outage.py counts as an outage (a 503, never a 500).
"""

from __future__ import annotations

from typing import Any, TypeAlias, cast
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)

from hub.config import RedisSettings

# What code that takes "a Redis" is handed: a single server or a RedisCluster. Typed as
# Redis because redis-py types its shared command mixins against Redis (register_script,
# AsyncScript(client=...)): a union fails every script call in mypy, though RedisCluster
# answers the same commands. :func:`is_cluster` tells the two apart at run time.
Client: TypeAlias = aioredis.Redis

# A failover that outlasts redis-py's retries: the cluster has no primary for some slots
# yet (CLUSTERDOWN, MASTERDOWN, TRYAGAIN), or the client's slot map has a hole.
# RedisClusterException is what redis-py raises when no start-up node answers.
CLUSTER_DOWN: tuple[type[BaseException], ...] = (
    ClusterDownError, MasterDownError, TryAgainError, SlotNotCoveredError, RedisClusterException,
)

# How often a command meeting a failover is tried again, and how long between (redis-py
# sleeps 0.25 s after CLUSTERDOWN): about one failover window (8 s with a 5 s node
# timeout, docs/scaling.md) is then answered 503 rather than hung.
CLUSTER_RETRIES = 3
LOCAL_CLUSTER_SIZE = 6


def startup_nodes(settings: RedisSettings) -> list[tuple[str, int]]:
    """Where a cluster client looks for the cluster: the url's node, ``[redis] nodes``,
    and for a local cluster (a loopback url, as ``hub services`` starts it) the other
    nodes on the following ports, so a client still starts when the url's node is down."""
    nodes = [(settings.host, settings.port)]
    for n in settings.nodes:
        host, _, port = n.rpartition(":")
        nodes.append((host, int(port)))
    if not settings.nodes and settings.host in ("127.0.0.1", "localhost"):
        nodes += [(settings.host, settings.port + i) for i in range(1, LOCAL_CLUSTER_SIZE)]
    return list(dict.fromkeys(nodes))


def is_cluster(client: Client) -> bool:
    return isinstance(client, RedisCluster)


def connect(settings: RedisSettings, *, max_connections: int = 200) -> Client:
    """A client that connects on first use (a process starts while Redis is down, and
    answers 503 until it is back). ``max_connections``: per server (per node on a cluster)."""
    common: dict[str, Any] = {"decode_responses": True, "socket_connect_timeout": 2, "socket_timeout": 5}
    if settings.cluster:
        u = urlparse(settings.url)
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in startup_nodes(settings)],
            username=u.username, password=u.password, ssl=u.scheme == "rediss",
            require_full_coverage=True,
            cluster_error_retry_attempts=CLUSTER_RETRIES,
            # Connection errors (a node just killed) retried with a small backoff first.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            max_connections=max_connections,
            **common,
        )
        return cast(Client, cluster)
    # hiredis is picked up by redis-py automatically when installed (it is a dependency).
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.url, max_connections=max_connections, health_check_interval=10, **common,
    )
    return client
