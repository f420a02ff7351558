"""The keyspace guard: one Redis key prefix serves one Cassandra keyspace.

Two hubs whose keyspaces differ must never share job queues or cached feeds: a worker of
one would take the other's fan-out jobs and look their activities up in the wrong
keyspace. The prefix defaults to one derived from the keyspace
(:func:`hub.config.settings.prefix_for`); an explicit ``[redis] key_prefix`` can still
make two hubs meet, so at start-up each hub binds its prefix to its keyspace in Redis
(``<prefix>:keyspace``, set only if absent, never expiring) and refuses to start when
the prefix is bound to another keyspace.

Guarantee: while the binding key lives, every hub that started on a prefix uses the same
keyspace. Redis is a cache: a flush (or a lost Redis without persistence) erases the
binding with everything else, and the first hub to start afterwards binds the prefix
again. Hubs already running do not check again; they meet the conflict only at their
next start. When the job queues live on a Redis of their own (``[queue] url``), the
prefix is bound there too: the queues are what two hubs must never share.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from hub.config import Settings
from hub.errors import ConfigError
from hub.storage.redis import REDIS_DOWN

log = logging.getLogger(__name__)


class KeyspaceConflict(ConfigError):
    """This hub's key prefix is bound to another keyspace (one line, naming both)."""


def binding_key(prefix: str) -> str:
    # Exactly two segments: an app's keys are ``<prefix>:<app>:<...>``, never this.
    return f"{prefix}:keyspace"


async def bind_keyspace(redis: Redis, settings: Settings, queue: Redis | None = None) -> None:
    """Bind ``settings.redis.key_prefix`` to ``settings.cassandra.keyspace`` unless it is
    bound already; raise :class:`KeyspaceConflict` if it is bound to another keyspace.
    Idempotent: any number of processes of one hub (serve, worker, tests) pass.
    ``queue``: the queue client; with the queues apart (``[queue] url``) the prefix is
    bound on that Redis too, and a queue Redis that is a cluster node is refused."""
    await _bind(redis, settings, settings.redis.url)
    if queue is not None and settings.queue_apart:
        info = await queue.info("cluster")
        if str(info.get("cluster_enabled", 0)) == "1":
            raise ConfigError("queue.url", f"{settings.queue_url} is a Redis Cluster node, and arq cannot keep its "
                                           "queues on a cluster: name a single Redis or a Sentinel master")
        await _bind(queue, settings, settings.queue_url)


async def _bind(redis: Redis, settings: Settings, url: str) -> None:
    prefix, keyspace = settings.redis.key_prefix, settings.cassandra.keyspace
    key = binding_key(prefix)
    for _ in range(3):  # the key may be deleted between the two commands (a flush)
        if await redis.set(key, keyspace, nx=True):
            log.info("Redis key prefix %r bound to the keyspace %r in %s", prefix, keyspace, url)
            return
        bound = await redis.get(key)
        if bound is None:
            continue
        bound = bound.decode() if isinstance(bound, bytes) else str(bound)
        if bound == keyspace:
            return
        raise KeyspaceConflict(
            "redis.key_prefix",
            f"{prefix!r} is bound to the keyspace {bound!r} in {url}, and this hub's keyspace "
            f"is {keyspace!r}: two keyspaces would share job queues and caches; set another key_prefix "
            f"(or remove it: the default is derived from the keyspace)",
        )


async def bind_unless_down(redis: Redis, settings: Settings, queue: Redis | None = None) -> None:
    """:func:`bind_keyspace`, but a Redis that does not answer only logs a warning (the web
    server starts and answers 503 until Redis is back; ``hub worker`` waits for Redis
    and checks the binding before it takes any job)."""
    try:
        await bind_keyspace(redis, settings, queue)
    except REDIS_DOWN as e:
        log.warning("the key prefix %r was not checked against the keyspace %r: Redis does not answer (%s)",
                    settings.redis.key_prefix, settings.cassandra.keyspace, e)
