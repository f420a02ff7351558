"""The hot read of a feed (:meth:`HotReads.read`), the page cache and the feeds' expiry.

A hot read is one script call (lua/read.lua) on the feed's slot: built checks, the page,
both counts, and on a single Redis its bodies too. What is not the feed's goes beside it
in the same pipeline: the user's ``active`` record (at most once a minute per user and
process) and the app's celebrities. So on a single Redis a read is one round trip, as it
was when all of it was inside the script. On a Redis Cluster the bodies are in other
slots: the script returns their ids and they are read by slot (hub/storage/slots.py), one
more round trip, one MGET per slot in parallel; a kept first page's bodies are checked
the same way before the page is used.

Expiry (``fanout.cache_days``; layout and writes: hub/storage/feedcache.py): the script
says when the built flag's TTL has fallen below the refresh point, and the reader then
renews the TTL of every key of the feed, in the background. The refresh point lies a
day below ``cache_days`` (a quarter of it when that is shorter), so a feed read every
day costs one renewal a day, not one per read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from hub.background import Background
from hub.config import FeedGroup
from hub.domain.aggregation import MAX_ACTORS
from hub.storage import scripts
from hub.storage.groupreads import GroupReads, GroupSummary, parse_summaries
from hub.storage.redis import Keys
from hub.storage.scriptbatch import ScriptBatch
from hub.storage.slots import count_existing, is_cluster, mget

PAGE_TTL = 300  # seconds: the pages of users who read often stay; the others' memory is given back
ACTIVE_EVERY = 60.0  # seconds: a user's active record is rewritten at most this often per process
_ACTIVE_MEMO = 50_000  # users remembered per process before the memo starts again


@dataclass(frozen=True)
class HotRead:
    """What :meth:`HotReads.read` found: ``missing`` names what to load before asking
    again ("feed", "marks", "celebrities"), else the page and its counts."""

    missing: str | None
    page: str | None  # the rendered first page (aggregated feeds), when current; else the fields below
    ids: list[str]
    groups: list[GroupSummary]
    bodies: dict[str, str]
    marks: dict[str, str]
    unseen: int
    unread: int
    celebrities: set[str]
    archived: bool = False  # the feed may hold archived entries (hub/storage/archive.py)


_MISSING = {0: "feed", 1: "marks"}


def page_body_ids(page: str) -> list[str]:
    """The body ids a rendered page's first line names (lua/read.lua)."""
    return [i for i in page.split("\n", 1)[0].split("\t")[2].split(",") if i]


class HotReads(GroupReads):
    """The read side of :class:`hub.storage.feedcache.FeedCache` (its base)."""

    def __init__(self, redis: Redis, prefix: str, *, cache_days: float) -> None:
        super().__init__(redis, prefix)
        self.cluster = is_cluster(redis)
        self.cache_seconds = max(1, round(cache_days * 86400))
        self._refresh_below = self.cache_seconds - min(86400, self.cache_seconds // 4)
        self._read_batch = ScriptBatch(redis, redis.register_script(scripts.READ))  # concurrent reads share a trip
        self._store_page = ScriptBatch(redis, redis.register_script(scripts.STORE_PAGE))
        self._keeping = Background()  # pages being stored, feeds being renewed
        self._active_at: dict[tuple[str, str], float] = {}

    @staticmethod
    def group_keys(k: Keys, feed: str) -> list[str]:
        """An aggregated feed's keys, in the scripts' order: order, states, members,
        actors, actor counts, rendered page (feedcache.py)."""
        return [k.agg(feed), k.agg_state(feed), k.agg_members(feed), k.agg_actors(feed), k.agg_actor_counts(feed),
                k.agg_page(feed)]

    def queue_touch(self, pipe: Any, app: str, feed: str, *, built: bool = False) -> None:
        """Renew the TTL of every cached key of a feed (those that exist) on ``pipe``,
        its change stream too (with ``built``, first set the built flag). The rendered
        page keeps its own short TTL, the online flag its own (hub/storage/changes.py).

        Every key gets the same absolute expiry time (PEXPIREAT), and the scripts copy it
        onto the keys they create (PEXPIRETIME of the order set, PEXPIREAT), so a feed's
        keys expire at the same instant: a read never
        finds the built flag gone and some of the rest still there, which a rebuild
        would then keep without the keys that expired under it."""
        k = self.keys(app)
        at = int((time.time() + self.cache_seconds) * 1000)
        if built:
            pipe.set(k.built(feed), "1", pxat=at)
        for key in (k.built(feed), k.feed(feed), k.rank(feed), *self.group_keys(k, feed)[:5], k.marks(feed),
                    k.changes(feed)):
            pipe.pexpireat(key, at)

    async def _touch(self, app: str, feed: str) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            self.queue_touch(pipe, app, feed)
            await pipe.execute()
        except Exception:  # the next read asks again
            pass

    def _active_command(self, k: Keys, user: str, now: float) -> list[tuple[Any, ...]]:
        """ZADD of the user's active record, unless this process wrote it a moment ago."""
        at = self._active_at.get((k.app, user))
        if at is not None and now - at < ACTIVE_EVERY:
            return []
        if len(self._active_at) >= _ACTIVE_MEMO:
            self._active_at.clear()
        self._active_at[(k.app, user)] = now
        return [("ZADD", k.active(), now, user)]

    async def read(self, app: str, group: FeedGroup, feed: str, user: str, limit: int, before: str | None,
                   bodies: int, body_prefix: str, per_group: int, pulls: bool, actors: int = MAX_ACTORS,
                   page_token: str = "") -> HotRead:
        """One page (``limit`` entries) with counts, marks and celebrities, in one round
        trip on a single Redis (module doc).

        Also records the user as active. Bodies come with the first ``bodies`` ids, or
        the newest ``per_group`` activities of the first ``bodies`` groups. With a
        ``page_token`` (an aggregated feed's first page), the rendered page when it is
        current, else the key is reserved for :meth:`keep_page` with that token.
        """
        k = self.keys(app)
        agg = group.is_aggregated
        order = k.agg(feed) if agg else k.feed(feed)
        keys = [k.built(feed), order, k.agg_state(feed) if agg else order, k.marks(feed),
                *([k.agg_page(feed), k.agg_members(feed), k.agg_actors(feed)] if agg else [order] * 3)]
        args: list[Any] = ["1" if agg else "0", f"({before}" if before else "+", limit, bodies,
                           "" if self.cluster else body_prefix, per_group, actors, page_token if agg else "", "0",
                           self._refresh_below, self._page_ttl(60)]
        now = time.time()
        commands = self._active_command(k, user, now)
        if pulls:
            commands.append(("SMEMBERS", k.celebrities()))
        r, extra = await self._read_batch.with_commands(keys, args, commands)
        celebs: set[str] = set(extra[-1]) if pulls else set()
        if r[0] in _MISSING:
            return HotRead(_MISSING[r[0]], None, [], [], {}, {}, 0, 0, set())
        if pulls and "!" not in celebs:
            return HotRead("celebrities", None, [], [], {}, {}, 0, 0, set())
        if r[-1] == 1:
            self._keeping.spawn(self._touch(app, feed))
        if r[0] == 4 and self.cluster:  # the script could not see the page's bodies
            bids = page_body_ids(r[1])
            if await count_existing(self.redis, [body_prefix + i for i in bids]) != len(bids):
                args[8] = "1"  # read the page afresh (and reserve the kept one)
                r = await self._read_batch(keys, args)
                if r[0] in _MISSING:
                    return HotRead(_MISSING[r[0]], None, [], [], {}, {}, 0, 0, set())
        if r[0] == 4:
            _, page, marks, unseen, unread, archived, _ = r
            it = iter(marks)
            return HotRead(None, page, [], [], {}, dict(zip(it, it)), max(0, int(unseen)), max(0, int(unread)),
                           celebs, archived == 1)
        _, members, second, ids, raws, marks, unseen, unread, archived, _ = r
        if self.cluster:
            raws = await mget(self.redis, [body_prefix + i for i in ids])
        groups = parse_summaries(second) if agg else []
        it = iter(marks)
        return HotRead(None, None, members if not agg else [], groups,
                       {i: b for i, b in zip(ids, raws) if b is not None}, dict(zip(it, it)),
                       max(0, int(unseen)), max(0, int(unread)), celebs, archived == 1)

    def _page_ttl(self, ttl: int) -> int:
        """A kept page (or its reservation) never outlives the feed's other keys."""
        return min(ttl, self.cache_seconds)

    def keep_page(self, app: str, feed: str, token: str, text: str) -> None:
        """Keep a rendered first page, unless the feed changed since the read that reserved it.

        Sent in the background: the answer need not wait for a second round trip, and a
        store that fails only means that the next read renders the page again.
        """
        self._keeping.spawn(self._keep_page(self.keys(app).agg_page(feed), token, text))

    async def _keep_page(self, key: str, token: str, text: str) -> None:
        try:
            await self._store_page([key], [token, text, self._page_ttl(PAGE_TTL)])
        except Exception:  # not worth a log line (see keep_page)
            pass
