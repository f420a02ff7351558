"""After a Redis Cluster failover: drop this hub's keys in the slots whose primary changed.

Redis replicates asynchronously, so a write that a primary acknowledged in its last
milliseconds may never reach the replica promoted in its place: a feed entry, a mark, a
follower. Such a loss is partial and leaves the feed marked built, so nothing would ever
rebuild it. The hub already survives a whole flush (Redis is a cache: feeds, marks and
follower caches rebuild from Cassandra when next used, and admission falls back to the
durable answers when its complete-since key is gone), so a failover is treated as a
flush of the slots it moved: every key of this hub's prefix in them is deleted.

Guarantee: a change of primary seen by one check leads to that flush; what a read serves
from those slots between the promotion and the flush may lack the lost writes (the check
runs every few seconds, ``workers/main.py``). The owners seen last are kept on the queue
Redis (a single Redis beside the cluster), so any worker's check compares with the one
before it. The first check of a hub only records them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio.cluster import RedisCluster

log = logging.getLogger(__name__)

SLOTS = 16384
KEYS_PER_UNLINK = 1000
CONCURRENT_SLOTS = 64


def owners_key(prefix: str) -> str:
    return f"{prefix}:cluster-primaries"


async def primaries(cluster: RedisCluster) -> dict[str, str]:
    """``"<first slot>-<last slot>"`` -> ``"host:port"`` of its primary, as the cluster says now."""
    # redis-py parses CLUSTER SLOTS into {(first, last): {"primary": (host, port), ...}}.
    rows: Any = await cluster.execute_command("CLUSTER SLOTS", target_nodes=RedisCluster.RANDOM)
    out: dict[str, str] = {}
    for (lo, hi), nodes in (rows.items() if isinstance(rows, dict) else []):
        host, port = nodes["primary"][:2]
        out[f"{int(lo)}-{int(hi)}"] = f"{_text(host)}:{int(port)}"
    return out


def _span(span: str) -> tuple[int, int]:
    """``"<first>-<last>"`` as the two slots."""
    lo, hi = span.split("-")
    return int(lo), int(hi)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def moved(before: dict[str, str], now: dict[str, str]) -> list[tuple[int, int, str]]:
    """The slot ranges (first, last, new primary) whose primary is not the one seen before,
    or that had none then (a check in the middle of a failover). Pure: ranges are compared
    slot by slot, so a range split or merged is no change."""
    owner_then: dict[int, str] = {}
    for span, node in before.items():
        lo, hi = _span(span)
        for slot in range(lo, hi + 1):
            owner_then[slot] = node
    out: list[tuple[int, int, str]] = []
    for span, node in sorted(now.items(), key=lambda kv: _span(kv[0])):
        lo, hi = _span(span)
        start: int | None = None
        for slot in range(lo, hi + 2):
            changed = slot <= hi and owner_then.get(slot) != node
            if changed and start is None:
                start = slot
            elif not changed and start is not None:
                out.append((start, slot - 1, node))
                start = None
    return out


async def flush_slots(cluster: RedisCluster, prefix: str, first: int, last: int, node: str) -> int:
    """Delete every key of ``prefix`` in slots ``first``..``last`` on ``node``; the count."""
    host, port = node.rsplit(":", 1)
    target = cluster.get_node(host=host, port=int(port))
    if target is None:
        raise RuntimeError(f"{node} is not a node of the cluster")
    mine = f"{prefix}:".encode()
    sem = asyncio.Semaphore(CONCURRENT_SLOTS)

    async def one(slot: int) -> int:
        async with sem:
            total: Any = await cluster.execute_command("CLUSTER COUNTKEYSINSLOT", slot, target_nodes=target)
            if not total:
                return 0
            # GETKEYSINSLOT has no cursor: asked for fewer keys than the slot holds, it
            # could answer other apps' keys only, every time. A slot holds 1/16384 of a
            # node's keys, so all of them at once is a small answer.
            keys: Any = await cluster.execute_command(
                "CLUSTER GETKEYSINSLOT", slot, int(total), target_nodes=target)
            ours = [k for k in keys if (k if isinstance(k, bytes) else str(k).encode()).startswith(mine)]
            for i in range(0, len(ours), KEYS_PER_UNLINK):
                await cluster.execute_command("UNLINK", *ours[i : i + KEYS_PER_UNLINK], target_nodes=target)
            return len(ours)

    return sum(await asyncio.gather(*(one(s) for s in range(first, last + 1))))


async def check(cluster: RedisCluster, queue: Any, prefix: str) -> int:
    """Compare the primaries with those the last check saw, flush the slots that moved
    and record the primaries; the number of keys deleted."""
    now = await primaries(cluster)
    if sum(hi - lo + 1 for lo, hi in map(_span, now)) < SLOTS:
        return 0  # in the middle of a failover: the next check sees where the slots went
    raw = await queue.get(owners_key(prefix))
    deleted = 0
    if raw:
        before = json.loads(raw)
        for first, last, node in moved(before, now):
            n = await flush_slots(cluster, prefix, first, last, node)
            log.warning("Redis Cluster failover: slots %d-%d now on %s; %d keys of %s dropped (rebuilt on use)",
                        first, last, node, n, prefix)
            deleted += n
    await queue.set(owners_key(prefix), json.dumps(now, sort_keys=True))
    return deleted
