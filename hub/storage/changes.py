"""Feed change log and live publish, for the websocket gateway (docs/api.md, Websocket).

Every change to a cached feed that a socket follows (or recently followed) gets a cursor
from the feed's own Redis Stream, ``Keys.changes(feed)`` (the stream entry id is the
cursor), and is published on the feed's own channel, ``Keys.channel(feed)``, with
``SPUBLISH`` (sharded pub/sub: on a Redis Cluster the message stays on the nodes of the
feed's slot; a single Redis 7 takes it as well), as
``{"app", "feed", "op": "entry"|"deleted", "ids", "cursor"}``. Both happen inside the
fan-out Lua scripts (hub/storage/feedcache.py, lua/notify.lua), atomically with the
change itself, so the log order is the change order and a publish never precedes its log
entry. Stream, flag and channel share the feed's hash tag: one slot per script call.

Only feeds whose online flag ``Keys.online(feed)`` exists (a string key with a TTL of
``ONLINE_TTL``, refreshed by the gateways while a socket follows the feed) are logged and
published, so offline users cost no extra Redis work. When a feed comes back online after
its flag expired, a ``gap`` entry is logged: a resume across it reports ``complete: false``.

Counts and archive changes are published on the same channel without a log entry:
``{"app", "feed", "op": "counts", "unseen", "unread"}`` (:func:`publish`).

Delivery: at most once per publish to each subscribed gateway (pub/sub keeps nothing);
what a gateway missed, it finds in the stream (realtime/subscriber.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from hub.storage import scripts
from hub.storage.redis import Keys

STREAM_MAXLEN = 500  # also in lua/notify.lua and lua/online.lua (the log's trim length)
ONLINE_TTL = 600  # seconds a feed stays "online" after its last refresh
REFRESH_EVERY = 30


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
    def __init__(self, redis: Redis, prefix: str, *, cache_days: float = 14.0) -> None:
        self.redis = redis
        self.prefix = prefix
        # A stream this creates (its gap entry) expires with the feed (fanout.cache_days).
        self.stream_seconds = max(1, round(cache_days * 86400))
        self._online = redis.register_script(scripts.ONLINE)

    async def set_online(self, app: str, feed: str) -> str:
        """Mark ``feed`` online for ``ONLINE_TTL`` s; returns the newest cursor of its log."""
        k = Keys(self.prefix, app)
        res = await self._online(keys=[k.online(feed), k.changes(feed)], args=[ONLINE_TTL, self.stream_seconds])
        return str(res or "")

    async def refresh_online(self, app: str, feeds: list[str]) -> None:
        """Keep the online flags of ``feeds`` for another ``ONLINE_TTL`` s (pipelined; on a
        cluster the client splits the pipeline by node). A flag that expired meanwhile
        is set again without a gap entry: the next subscribe's set_online decides."""
        if not feeds:
            return
        k = Keys(self.prefix, app)
        pipe = self.redis.pipeline(transaction=False)
        for f in feeds:
            pipe.set(k.online(f), "1", ex=ONLINE_TTL)
        await pipe.execute()

    async def replay(self, app: str, feed: str, since: str, limit: int) -> Replay:
        """Changes after ``since`` (exclusive), oldest first, at most ``limit``.

        Incomplete when the log is gone or trimmed past ``since``, holds a gap after it,
        or has more than ``limit`` changes after it.
        """
        key = Keys(self.prefix, app).changes(feed)
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


async def publish(redis: Redis, prefix: str, app: str, feed: str, msg: Mapping[str, object]) -> None:
    """``msg`` on the feed's channel (no log entry: not replayed by a resume)."""
    # execute_command: redis.asyncio's RedisCluster has no spublish(); both route SPUBLISH
    # by its channel (the feed's slot on a cluster).
    await redis.execute_command(  # type: ignore[no-untyped-call]
        "SPUBLISH", Keys(prefix, app).channel(feed), json.dumps(msg, separators=(",", ":")))


async def publish_counts(redis: Redis, prefix: str, app: str, feed: str, counts: Mapping[str, int]) -> None:
    msg = {"app": app, "feed": feed, "op": "counts", "unseen": counts["unseen"], "unread": counts["unread"]}
    await publish(redis, prefix, app, feed, msg)
