"""The hub's Redis client: one Redis, or a Redis Cluster when ``[redis] cluster`` is true.

On a cluster, redis-py's ``RedisCluster`` follows MOVED and ASK by itself and retries
TRYAGAIN and CLUSTERDOWN (a failover in progress) with a short sleep, up to
``CLUSTER_RETRIES`` times; what still fails is raised as one of :data:`CLUSTER_DOWN`,
which hub/storage/outage.py counts as an outage (a 503, never a 500).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias, cast
from urllib.parse import urlparse

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

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


_REDIS_PY = Path(redis.__file__).parent


@contextmanager
def _failover_race() -> Iterator[None]:
    """Turn redis-py's own ``AttributeError`` into a ``ConnectionError``. Its async cluster
    client (5.x) closes every connection of the client when a pipeline meets a failover,
    so commands and pipelines of other tasks find a connection or the default node gone
    (``'NoneType' object has no attribute 'writelines'``, or ``'name'``)."""
    try:
        yield
    except AttributeError as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is None or not Path(tb.tb_frame.f_code.co_filename).is_relative_to(_REDIS_PY):
            raise  # ours: a bug
        raise RedisConnectionError(f"connection closed during a cluster failover ({e})") from e


class _Pipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        with _failover_race():
            return await super().execute(raise_on_error, allow_redirections)


class HubCluster(RedisCluster):
    """redis-py's RedisCluster whose failover races surface as a ``ConnectionError`` (an
    outage: a 503, or a job run again) instead of an ``AttributeError``, which a worker
    takes for a bug and fails the job for good (a fan-out chunk lost from cached feeds)."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _failover_race():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)  # refuses them, as redis-py does
        return _Pipeline(self)  # type: ignore[abstract]  # as in redis-py: pools are per node


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
        cluster = HubCluster(
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
