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

from hub.config import RedisSettings
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


def queue_name(settings: RedisSettings, priority: str) -> str:
    if priority not in PRIORITIES:
        raise ValueError(f"unknown queue {priority!r}")
    return f"{settings.key_prefix}:queue:{priority}"


def serialize(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def deserialize(data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(data)
    return result


def arq_redis_settings(settings: RedisSettings) -> ArqRedisSettings:
    return ArqRedisSettings.from_dsn(settings.url)


async def connect_queue(settings: RedisSettings) -> ArqRedis:
    """A queue client that connects on first use, so a process starts while Redis is down
    (and answers 503 until it is back) instead of failing at start-up."""
    pool = ConnectionPool.from_url(settings.url, socket_connect_timeout=2, socket_timeout=5)
    return ArqRedis(
        pool, job_serializer=serialize, job_deserializer=deserialize, default_queue_name=queue_name(settings, HIGH)
    )


# arq's ``enqueue_job`` as one script (hub/storage/lua/enqueue.lua), so that queueing
# shares a round trip with other writes (hub/storage/trip.py) instead of taking three
# (WATCH, EXISTS, MULTI/EXEC); the sets it may check are :class:`SetsHoldOnly`'s.
# tests/integration/test_fanout.py runs jobs queued this way.
QUEUED, EXISTS, NOTHING_TO_DO = 1, 0, 2


class JobScript:
    def __init__(self, redis: Redis, queue: ArqRedis) -> None:
        self._script = redis.register_script(scripts.ENQUEUE)
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
        if skip_if is not None and skip_if.keys:
            keys += skip_if.keys
            argv[4] = skip_if.member
        return trip.script(self._script, keys, argv)
