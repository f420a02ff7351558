"""Rebuilding a feed cache from Cassandra.

Feeds are derived data: an actor's own activities, the activities of whom a user
follows (from the follow's start, plus the ones copied in, plus history kept after an
unfollow), and the activities addressed to the feed with ``to``. Fan-out keeps the cache
up to date; this rebuilds it when Redis lost it or never had it (an inactive user).

The feed is opened to fan-out *before* its sources are read, so an activity stored
while the rebuild runs is either read here or written by its fan-out (or both: adds are
idempotent). Aggregated feeds replay up to ``REPLAY_FACTOR * max_length`` activities in
id order through the same script fan-out uses, so a rebuilt feed equals the one
fan-out built.

The followees' activity ids are read with one multi-partition query per 100 followees
(``actor IN ...``, capped at ``2 * limit + 1`` rows) instead of one query per followee:
when it returns fewer rows than the cap it returned every id of those followees, and each
followee's range (from ``since``, copied, kept history) is cut from them exactly as its
own query would have; a capped answer falls back to one query per range. Either way the
rebuilt feed is the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from hub.config import FeedGroup
from hub.core import Hub
from hub.storage.actorids import actors_ids
from hub.storage.bodytexts import alive_ids

log = logging.getLogger(__name__)

REPLAY_FACTOR = 5


async def ensure_built(hub: Hub, app: str, group: FeedGroup, user: str) -> bool:
    """Rebuild the feed when it is not cached. Returns True when it rebuilt."""
    feed = group.feed_of(user)
    if await hub.feeds.is_built(app, group, feed):
        return False
    await rebuild(hub, app, group, user)
    return True


async def rebuild(hub: Hub, app: str, group: FeedGroup, user: str) -> int:
    feed = group.feed_of(user)
    hub.metrics.rebuilds.labels(group.kind).inc()
    await hub.feeds.start_build(app, group, feed)
    limit = group.max_length if not group.is_aggregated else group.max_length * REPLAY_FACTOR
    ids = await source_ids(hub, app, group, user, limit)
    if group.is_aggregated:
        bodies = await hub.activities.get_many(app, ids)
        activities = [bodies[i] for i in reversed(ids) if i in bodies]
        n = len(activities)
        await hub.feeds.fill(app, group, feed, activities)
    else:  # a flat feed holds ids only: check the activities exist, parse no bodies
        alive = await alive_ids(hub.activities, app, ids)
        kept = [i for i in reversed(ids) if i in alive]
        n = len(kept)
        await hub.feeds.fill_ids(app, group, feed, kept)
        if group.is_ranked:  # the rank index needs each score, so here the bodies are read
            bodies = await hub.activities.get_many(app, kept[-group.max_length :])
            await hub.feeds.ranks.fill(app, group, feed, list(bodies.values()))
    if n > 1000:
        log.info("rebuilt %s/%s from %d activities", app, feed, n)
    await hub.feeds.finish_build(app, feed)
    return n


async def source_ids(hub: Hub, app: str, group: FeedGroup, user: str, limit: int) -> list[str]:
    """The newest ``limit`` activity ids the feed should hold, newest first."""
    store = hub.activities
    # Coroutines made only once nothing can fail before they are awaited (the follows'
    # read below may: an unawaited coroutine would be left behind).
    queries: list[Awaitable[list[str]]] = []
    if group.follows == "user":
        celebrities, following, kept = await asyncio.gather(
            hub.follows.celebrities(app), hub.follows.following(app, user), hub.follows.kept_history(app, user)
        )
        # (actor, at most, above, up to): one range of an actor's activities each, exactly
        # what one ``user_activity_ids`` call would read.
        ranges: list[_Range] = []
        for f in following:
            if f.followee in celebrities:
                continue  # merged in when read
            ranges.append((f.followee, limit, f.since, None))
            if f.copy and f.since:
                ranges.append((f.followee, f.copy, None, f.since))
        for k in kept:
            ranges.append((k.followee, limit, k.since, k.until))
            if k.copy and k.since:
                ranges.append((k.followee, k.copy, None, k.since))
        by_actor: dict[str, list[_Range]] = {}
        for r in ranges:
            by_actor.setdefault(r[0], []).append(r)
        actors = list(by_actor)
        for start in range(0, len(actors), _IN_ACTORS):
            chunk = {a: by_actor[a] for a in actors[start : start + _IN_ACTORS]}
            queries.append(_ranges_ids(hub, app, chunk, 2 * limit + 1))
    queries.append(store.target_ids(app, group.feed_of(user), limit))
    if group.name == "user":
        queries.append(store.user_activity_ids(app, user, limit))
    found: set[str] = set()
    for ids in await asyncio.gather(*queries):
        found.update(ids)
    return sorted(found, reverse=True)[:limit]


_Range = tuple[str, int, str | None, str | None]
_IN_ACTORS = 100


async def _ranges_ids(hub: Hub, app: str, by_actor: dict[str, list[_Range]], cap: int) -> list[str]:
    """The ids of the ranges (as ``user_activity_ids`` reads them, one query per range),
    read with one multi-partition query when these actors have fewer than ``cap``
    activities in all: then it returned every id of theirs, and each range is cut from
    them exactly as its own query would have. Otherwise one query per range."""
    if len(by_actor) > 1:
        rows = await actors_ids(hub.activities.db, app, list(by_actor), cap)
        if len(rows) < cap:  # complete: every activity id of these actors
            ids: dict[str, list[str]] = {a: [] for a in by_actor}
            for actor, aid in rows:
                ids[actor].append(aid)
            out: list[str] = []
            for actor, rs in by_actor.items():
                mine = sorted(ids[actor], reverse=True)
                for _, n, above, upto in rs:
                    got = [i for i in mine if (above is None or i > above) and (upto is None or i <= upto)]
                    out += got[:n]
            return out
    store = hub.activities
    found = await asyncio.gather(*(store.user_activity_ids(app, a, n, above=above, upto=upto)
                                   for rs in by_actor.values() for a, n, above, upto in rs))
    return [i for ids_ in found for i in ids_]
