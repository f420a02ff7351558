"""The job queue shared by producers (web, workers) and consumers (workers).

Jobs travel through arq in Redis. Arguments are plain JSON (ids and numbers, never
pickled objects), so a job can be read, replayed or produced by anything. Job ids are
deterministic where a job must not run twice concurrently for the same work (arq keeps
one job per id).
"""

from __future__ import annotations

import json
import time
from typing import Any

from arq.connections import ArqRedis
from arq.connections import RedisSettings as ArqRedisSettings
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from hub.config import RedisSettings, Settings
from hub.storage import scripts
from hub.storage.precondition import SetsHoldOnly
from hub.storage.trip import Trip

HIGH = "high"
LOW = "low"
PRIORITIES = (HIGH, LOW)

# Job names: the contract between the producers (web, workers) and the worker functions.
# (app, [activity_id, ...], own_done, marker): plan the fan-out of one group of activities, then
# drop its pending marker ([minute, id, row], or None: hub/storage/pending.py MarkerRef)
FANOUT = "fanout"
FANOUT_CHUNK = "fanout_chunk"  # (app, activity_id, followers, chunks): write into those feeds
REMOVE = "remove_activity"  # (app, activity_id): take a deleted activity out of feeds
SWEEP = "sweep_pending"  # (): re-queue stored activities whose fan-out was not queued
FAILOVER = "redis_failover"  # (): on a Redis Cluster, flush the slots whose primary changed


def queue_name(settings: RedisSettings, priority: str) -> str:
    if priority not in PRIORITIES:
        raise ValueError(f"unknown queue {priority!r}")
    return f"{settings.key_prefix}:queue:{priority}"


def serialize(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def deserialize(data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(data)
    return result


def arq_redis_settings(settings: Settings) -> ArqRedisSettings:
    """arq's own description of the queue Redis (``[queue] url``, else ``redis.url``):
    with ``redis+sentinel://``, the sentinels and the master's name."""
    sentinel = settings.queue.sentinel
    if sentinel is None:
        return ArqRedisSettings.from_dsn(settings.queue_url)
    hosts, master, db = sentinel
    return ArqRedisSettings(host=[*hosts], sentinel=True, sentinel_master=master, database=db)


def queue_pool(settings: Settings) -> ConnectionPool:
    """A connection pool to the queue Redis that connects on first use. Its timeouts bound
    how long a hung (not refusing) Redis can hold a caller or arq's poll loop. Through
    Sentinel, each new connection asks the sentinels for the current master, so after a
    failover the pool reconnects to the new one."""
    timeouts = {"socket_connect_timeout": 2, "socket_timeout": 5}
    sentinel = settings.queue.sentinel
    if sentinel is None:
        return ConnectionPool.from_url(settings.queue_url, **timeouts)
    hosts, master, db = sentinel
    manager = Sentinel([*hosts], sentinel_kwargs=dict(timeouts), **timeouts)  # type: ignore[no-untyped-call]
    return SentinelConnectionPool(master, manager, db=db, **timeouts)  # type: ignore[no-untyped-call]


async def connect_queue(settings: Settings, priority: str = HIGH) -> ArqRedis:
    """A queue client (``[queue] url``) that connects on first use, so a process starts
    while Redis is down (and answers 503 until it is back) instead of failing at start-up."""
    return ArqRedis(queue_pool(settings), job_serializer=serialize, job_deserializer=deserialize,
                    default_queue_name=queue_name(settings.redis, priority))


# arq's ``enqueue_job`` as one script (hub/storage/lua/enqueue.lua), so that queueing
# shares a round trip with other writes (hub/storage/trip.py) instead of taking three
# (WATCH, EXISTS, MULTI/EXEC); the sets it may check are :class:`SetsHoldOnly`'s.
# tests/integration/test_fanout.py runs jobs queued this way.
QUEUED, EXISTS, NOTHING_TO_DO = 1, 0, 2


class JobScript:
    """Queues jobs as arq's ``enqueue_job`` would, as part of a :class:`Trip` on the main
    Redis. With the queues on that Redis (``queue_apart`` false) it is one script call in
    the trip's one round trip. With the queues on a Redis of their own (a Redis Cluster
    holds the feeds: arq cannot use it), ``skip_if`` is read in the trip (plain
    SCARD/SISMEMBER, one key each, so a cluster routes them) and the job is queued on the
    queue Redis right after it: two round trips, only then."""

    def __init__(self, redis: Redis, queue: ArqRedis, *, apart: bool = False) -> None:
        self._apart = apart
        self._script = (queue if apart else redis).register_script(scripts.ENQUEUE)
        self._serializer = queue.job_serializer
        self._expires_ms = queue.expires_extra_ms

    def queue(
        self, trip: Trip, function: str, *args: Any, job_id: str, queue: str, skip_if: SetsHoldOnly | None = None,
        again: bool = False,
    ) -> int:
        """Queue on ``trip`` what ``enqueue_job`` would; the answer at the returned index
        is QUEUED, EXISTS (a job with that id is there) or NOTHING_TO_DO (``skip_if`` held).

        ``again``: run it again though a job with that id already ran (its kept result is
        replaced), unless one is still queued or running: a re-queue that arq's rule
        would silently drop for as long as the result is kept."""
        now_ms = int(time.time() * 1000)
        job = serialize_job(function, args, {}, None, now_ms, serializer=self._serializer)
        keys = [job_key_prefix + job_id, result_key_prefix + job_id, queue]
        argv: list[Any] = [self._expires_ms, job, now_ms, job_id, "", "1" if again else "0"]
        if not self._apart:
            if skip_if is not None and skip_if.keys:
                keys += skip_if.keys
                argv[4] = skip_if.member
            return trip.script(self._script, keys, argv)
        checks = self._queue_checks(trip, skip_if)

        async def enqueue(answers: list[Any]) -> int:
            if checks is not None and _idle(answers, *checks):
                return NOTHING_TO_DO
            return int(await self._script(keys=keys, args=argv))

        return trip.then(enqueue)

    @staticmethod
    def _queue_checks(trip: Trip, skip_if: SetsHoldOnly | None) -> tuple[int, int, str] | None:
        """SCARD and SISMEMBER of each set on ``trip``: (first answer's index, sets, member)."""
        if skip_if is None or not skip_if.keys:
            return None
        first = len(trip.pipe)
        for key in skip_if.keys:
            trip.pipe.scard(key)
            trip.pipe.sismember(key, skip_if.member)
        return first, len(skip_if.keys), skip_if.member


def _idle(answers: list[Any], first: int, sets: int, member: str) -> bool:
    """What enqueue.lua checks: every set holds ``member`` and nothing else. An answer that
    is an error counts as "not idle": the job is queued and finds out for itself."""
    pairs = answers[first : first + 2 * sets]
    return all(pairs[i] == 1 and pairs[i + 1] in (1, True) for i in range(0, len(pairs), 2))
