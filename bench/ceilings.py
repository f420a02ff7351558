"""Ceilings: what this machine does with no hub code, measured in the same run as a figure.

Each scenario prints its figure beside one of these, so the figure reads as a ratio that
survives the machine's noise.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.common import percentile
from hub.config import Settings
from hub.storage import redis as redis_storage


async def redis_zadd_ceiling(settings: Settings, seconds: float = 2.0) -> float:
    """Python-to-Redis pipelined ZADD: 1,000 ZADD to 1,000 keys per pipeline, in entries/s."""
    r = redis_storage.connect(settings.redis)
    prefix = f"{settings.redis.key_prefix}:ceiling"
    keys = [f"{prefix}:{i}" for i in range(1000)]
    try:
        n = 0
        member = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            pipe = r.pipeline(transaction=False)
            m = f"{member:020d}"
            for k in keys:
                pipe.zadd(k, {m: 0})
            await pipe.execute()
            n += len(keys)
            member += 1
        elapsed = time.perf_counter() - start
        return n / elapsed
    finally:
        for i in range(0, len(keys), 500):
            await r.delete(*keys[i : i + 500])
        await r.aclose()


@dataclass
class PubSubCeiling:
    """Redis pub/sub into one redis-py subscriber, with no hub code: what any push through
    Redis costs on this machine, measured in the same run."""

    p50_ms: float
    p99_ms: float
    per_s: float

    def report(self) -> str:
        return (f"ceiling: Redis PUBLISH to a redis-py subscriber in one process: p50 {self.p50_ms:.2f} ms, "
                f"p99 {self.p99_ms:.2f} ms at 100/s; {self.per_s:,.0f} messages/s received at most")


async def pubsub_ceiling(settings: Settings, *, quick: bool) -> PubSubCeiling:
    import redis.asyncio as aioredis

    pub = aioredis.Redis.from_url(settings.redis.url)
    sub = aioredis.Redis.from_url(settings.redis.url)
    chan = f"{settings.redis.key_prefix}:ceiling"
    ps = sub.pubsub()
    await ps.subscribe(chan)
    await ps.get_message(timeout=1.0)  # the subscribe confirmation
    try:
        lat: list[float] = []
        t0 = time.monotonic()
        for i in range(200 if quick else 500):
            await asyncio.sleep(max(0.0, t0 + i / 100 - time.monotonic()))
            await pub.publish(chan, repr(time.monotonic()))
            msg = await ps.get_message(timeout=1.0)
            if msg is not None:
                lat.append((time.monotonic() - float(msg["data"])) * 1000)
        total, got = (20_000 if quick else 100_000), 0

        async def publish_all() -> None:
            for start in range(0, total, 500):
                pipe = pub.pipeline(transaction=False)
                for _ in range(500):
                    pipe.publish(chan, b'{"op":"counts","unseen":1,"unread":1}')
                await pipe.execute()

        sender = asyncio.create_task(publish_all())
        first = last = 0.0
        while got < total:
            msg = await ps.get_message(timeout=2.0)
            if msg is None:
                break
            last = time.monotonic()
            first = first or last
            got += 1
        await sender
        return PubSubCeiling(percentile(lat, 50), percentile(lat, 99), got / (last - first) if last > first else 0.0)
    finally:
        await ps.aclose()
        await sub.aclose()
        await pub.aclose()
