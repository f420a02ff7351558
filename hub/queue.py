"""The job queue shared by producers (web, workers) and consumers (workers).

Jobs travel through arq in Redis. Arguments are plain JSON (ids and numbers, never
pickled objects), so a job can be read, replayed or produced by anything. Job ids are
deterministic where a job must not run twice concurrently for the same work (arq keeps
one job per id).
"""

from __future__ import annotations

import json
from typing import Any

from arq.connections import ArqRedis, RedisSettings as ArqRedisSettings
from redis.asyncio import ConnectionPool

from hub.config import RedisSettings

HIGH = "high"
LOW = "low"
PRIORITIES = (HIGH, LOW)

# Job names: the contract between the producers (web, workers) and the worker functions.
FANOUT = "fanout"  # (app, [activity_id, ...], own_done): plan the fan-out of one group of activities
FANOUT_CHUNK = "fanout_chunk"  # (app, activity_id, followers): write into those feeds
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
