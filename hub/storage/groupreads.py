"""Reading an aggregated feed's groups (layout: :mod:`hub.storage.feedcache`).

A group's entry is built from its :class:`GroupSummary`, which the scripts compute
inside Redis in O(log n) whatever the group's size (hub/storage/lua/groups.lua,
``summary``); :meth:`GroupReads.groups` lists every member and is for checks and tools.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from hub.config import FeedGroup
from hub.domain.aggregation import MAX_ACTIVITIES, MAX_ACTORS
from hub.storage import scripts
from hub.storage.redis import Keys
from hub.storage.trip import Trip

SENTINEL = "!"


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """What the read script says about a group on the page: its entry but for the bodies."""

    id: str
    key: str
    created_at: str
    newest_id: str
    activity_count: int
    actor_count: int
    actors: list[str]
    newest: list[str]  # the newest activity ids (at most the per-group limit), newest first

    @property
    def cursor(self) -> str:
        return f"{self.newest_id}|{self.id}"


@dataclass(frozen=True)
class GroupState:
    """An aggregated group with every member (activity id -> actor): for checks and tools
    (:meth:`FeedCache.groups`), O(size of the group). Entries are built from
    :class:`GroupSummary`."""

    id: str
    key: str
    members: dict[str, str]
    created_at: str
    newest_id: str

    @property
    def cursor(self) -> str:
        return f"{self.newest_id}|{self.id}"


class GroupReads:
    """The group reads of :class:`hub.storage.feedcache.FeedCache` (its base)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._summaries = redis.register_script(scripts.GROUP_SUMMARIES)

    def keys(self, app: str) -> Keys:
        return Keys(self.prefix, app)

    async def entry_newest(self, app: str, group: FeedGroup, feed: str, ids: Sequence[str]) -> dict[str, str]:
        """``entry -> its newest id`` for the entry ids the feed holds (groups of an
        aggregated feed, activities of a flat one); the others are left out."""
        k = self.keys(app)
        if not ids:
            return {}
        if group.is_aggregated:
            raws = await self.redis.hmget(k.agg_state(feed), list(ids))  # type: ignore[misc]  # redis-py: value | Awaitable
            return {gid: parse_state(raw)[2] for gid, raw in zip(ids, raws) if raw}
        scores = await self.redis.zmscore(k.feed(feed), list(ids))
        return {i: i for i, s in zip(ids, scores) if s is not None}

    async def groups(self, app: str, feed: str, limit: int, before: str | None = None) -> list[GroupState]:
        """Groups with every member, newest first: O(their sizes), for checks and tools."""
        k = self.keys(app)
        top = f"({before}" if before else "+"
        entries: list[str] = await self.redis.zrevrangebylex(k.agg(feed), top, f"({SENTINEL}", 0, limit)
        if not entries:
            return []
        gids = [m.split("|", 1)[1] for m in entries]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(k.agg_state(feed), gids)
        for gid in gids:
            pipe.zrangebylex(k.agg_members(feed), f"[{gid}|", f"({gid}}}")
        raws, *members = await pipe.execute()
        out: list[GroupState] = []
        for gid, raw, ms in zip(gids, raws, members):
            if raw is None:  # trimmed between the two calls
                continue
            key, created, newest = parse_state(raw)
            held = dict(m[len(gid) + 1 :].split("|", 1) for m in ms)
            out.append(GroupState(gid, key, held, created, newest))
        return out

    async def page_groups(self, app: str, feed: str, limit: int, before: str | None = None,
                          per_group: int = MAX_ACTIVITIES, actors: int = MAX_ACTORS) -> list[GroupSummary]:
        """Summaries of the ``limit`` groups below the cursor ``before``, newest first."""
        k = self.keys(app)
        top = f"({before}" if before else "+"
        entries: list[str] = await self.redis.zrevrangebylex(k.agg(feed), top, f"({SENTINEL}", 0, limit)
        return await self.summaries(app, feed, [m.split("|", 1)[1] for m in entries], per_group, actors)

    async def summaries(self, app: str, feed: str, gids: Sequence[str], per_group: int = MAX_ACTIVITIES,
                        actors: int = MAX_ACTORS) -> list[GroupSummary]:
        """Summaries of these groups of a feed, in their order; groups it does not hold are left out."""
        trip = Trip(self.redis)
        self.queue_summaries(trip, app, feed, gids, per_group, actors)
        (raw,) = await trip.execute()
        return parse_summaries(raw)

    def queue_summaries(self, trip: Trip, app: str, feed: str, gids: Sequence[str], per_group: int = MAX_ACTIVITIES,
                        actors: int = MAX_ACTORS) -> None:
        """:meth:`summaries` queued on a trip; its answer goes through :func:`parse_summaries`."""
        k = self.keys(app)
        keys = [k.agg_state(feed), k.agg_members(feed), k.agg_actors(feed)]
        trip.script(self._summaries, keys, [per_group, actors, *gids])


def parse_state(raw: str) -> tuple[str, str, str]:
    """A group's state as stored in the states hash: (key, created_at, newest id)."""
    st = json.loads(raw)
    return st["k"], st["c"], st["n"]


def parse_summaries(raw: Sequence[Any]) -> list[GroupSummary]:
    """The summaries a script returned (lua/groups.lua, summary), without the gone ones."""
    return [GroupSummary(g[0], g[1], g[2], g[3], int(g[4]), int(g[5]), list(g[6]), list(g[7])) for g in raw if g]
