"""Feed change log and live publish, for the websocket gateway (docs/api.md, Websocket).

Every change to a cached feed that someone is (or recently was) connected to gets a
cursor from a per-feed Redis Stream, ``<prefix>:<app>:cs:<feed>`` (the stream entry id
is the cursor), and is published once on one channel per hub, ``<prefix>:rt``, as
``{"app", "feed", "op": "entry"|"deleted", "ids", "cursor"}``. Both happen inside the
fan-out Lua scripts (hub/storage/feedcache.py), atomically with the change itself, so
the log order is the change order and a publish never precedes its log entry.

Only feeds in ``<prefix>:<app>:online`` (sorted set feed -> expiry unix time, kept by the
gateway while subscribed and ~10 minutes after) are logged, so offline users cost no
extra Redis work. When a feed comes back online after its expiry, the gateway logs a
``gap`` entry: a resume across it reports ``complete: false``.

Counts changes (after a mark) are published without a log entry:
``{"app", "feed", "op": "counts", "unseen", "unread"}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from hub.storage import scripts
from hub.storage.redis import Keys

STREAM_MAXLEN = 500  # also in lua/notify.lua and lua/online.lua (the log's trim length)
ONLINE_TTL = 600  # seconds a feed stays "online" after its last refresh
REFRESH_EVERY = 30


def channel(prefix: str) -> str:
    return f"{prefix}:rt"


def stream_key(k: Keys, feed: str) -> str:
    return f"{k.base}:cs:{feed}"


def online_key(k: Keys) -> str:
    return f"{k.base}:online"


def parse_cursor(cursor: str) -> tuple[int, int] | None:
    ms, sep, seq = cursor.partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit() or len(ms) > 20 or len(seq) > 20:
        return None
    return int(ms), int(seq)


@dataclass(frozen=True)
class Change:
    cursor: str
    op: str  # entry | deleted | gap
    ids: list[str]


@dataclass(frozen=True)
class Replay:
    changes: list[Change]
    complete: bool
    last: str  # the newest cursor seen in the log ("" if none)


class ChangeLog:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.channel = channel(prefix)
        self._online = redis.register_script(scripts.ONLINE)

    async def set_online(self, app: str, feed: str, *, now: float | None = None) -> str:
        """Mark ``feed`` online for ``ONLINE_TTL`` s; returns the newest cursor of its log."""
        now = time.time() if now is None else now
        k = Keys(self.prefix, app)
        res = await self._online(keys=[online_key(k), stream_key(k, feed)], args=[feed, now + ONLINE_TTL, now])
        return str(res or "")

    async def refresh_online(self, app: str, feeds: list[str], *, now: float | None = None) -> None:
        if not feeds:
            return
        now = time.time() if now is None else now
        k = Keys(self.prefix, app)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(online_key(k), {f: now + ONLINE_TTL for f in feeds})
        pipe.zremrangebyscore(online_key(k), "-inf", now)
        await pipe.execute()

    async def replay(self, app: str, feed: str, since: str, limit: int) -> Replay:
        """Changes after ``since`` (exclusive), oldest first, at most ``limit``.

        Incomplete when the log is gone or trimmed past ``since``, holds a gap after it,
        or has more than ``limit`` changes after it.
        """
        key = stream_key(Keys(self.prefix, app), feed)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrange(key, "-", "+", count=1)
        pipe.xrange(key, f"({since}", "+", count=limit + 1)
        pipe.xrevrange(key, "+", "-", count=1)
        first, rows, newest = await pipe.execute()
        last = newest[0][0] if newest else ""
        if not first or parse_cursor(first[0][0]) > parse_cursor(since):  # type: ignore[operator]
            return Replay([], False, last)
        changes = [Change(cid, f.get("op", ""), json.loads(f.get("ids", "[]"))) for cid, f in rows]
        if len(changes) > limit or any(c.op == "gap" for c in changes):
            return Replay([], False, last)
        return Replay(changes, True, last)


async def publish_counts(redis: Redis, prefix: str, app: str, feed: str, counts: Mapping[str, int]) -> None:
    msg = {"app": app, "feed": feed, "op": "counts", "unseen": counts["unseen"], "unread": counts["unread"]}
    await redis.publish(channel(prefix), json.dumps(msg, separators=(",", ":")))
