"""Grouping keys by Redis Cluster slot, so that every script call and multi-key command
touches one slot (docs/design.md, Redis Cluster).

On a single Redis every key is "in one slot": a caller makes one batch of everything, as
before (fan-out writes 100 feeds per script call, a read's bodies come in one MGET). On a
Redis Cluster (``redis.cluster``: the client is a ``RedisCluster``) the same code makes
one batch per slot, and a cluster pipeline sends the batches of one node together, so a
chunk of fan-out or a page's bodies costs one round trip per node, in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

T = TypeVar("T")


def is_cluster(redis: Any) -> bool:
    return isinstance(redis, RedisCluster)


def slot_of(key: str) -> int:
    return key_slot(key.encode())


def by_slot(cluster: bool, items: Sequence[T], key_of: Callable[[T], str]) -> list[list[T]]:
    """``items`` in batches whose keys (``key_of``) share a slot, in their order within a
    batch; one batch of all of them when not on a cluster (none when empty)."""
    if not items:
        return []
    if not cluster:
        return [list(items)]
    out: dict[int, list[T]] = {}
    for item in items:
        out.setdefault(slot_of(key_of(item)), []).append(item)
    return list(out.values())


async def mget(redis: Any, keys: Sequence[str]) -> list[Any]:
    """MGET of keys in any slots, answers in the keys' order: one MGET on a single Redis,
    one per slot on a cluster, in one pipeline (one round trip per node)."""
    if not keys:
        return []
    if not is_cluster(redis):
        return list(await redis.mget(keys))
    batches = by_slot(True, list(range(len(keys))), lambda i: keys[i])
    pipe = redis.pipeline(transaction=False)
    for b in batches:
        pipe.execute_command("MGET", *(keys[i] for i in b))  # ClusterPipeline.mget is blocked: one slot here
    out: list[Any] = [None] * len(keys)
    for b, values in zip(batches, await pipe.execute()):
        for i, v in zip(b, values):
            out[i] = v
    return out


async def count_existing(redis: Any, keys: Sequence[str]) -> int:
    """How many of ``keys`` exist (EXISTS, per slot on a cluster, one round trip per node)."""
    if not keys:
        return 0
    if not is_cluster(redis):
        return int(await redis.exists(*keys))
    pipe = redis.pipeline(transaction=False)
    for b in by_slot(True, list(keys), lambda k: k):
        pipe.execute_command("EXISTS", *b)
    return sum(int(n) for n in await pipe.execute())
