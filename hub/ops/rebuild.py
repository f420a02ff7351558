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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from hub.config import FeedGroup
from hub.core import Hub

log = logging.getLogger(__name__)

REPLAY_FACTOR = 5


async def ensure_built(hub: Hub, app: str, group: FeedGroup, user: str) -> bool:
    """Rebuild the feed when it is not cached. Returns True when it rebuilt."""
    feed = f"{group.name}:{user}"
    if await hub.feeds.is_built(app, group, feed):
        return False
    await rebuild(hub, app, group, user)
    return True


async def rebuild(hub: Hub, app: str, group: FeedGroup, user: str) -> int:
    feed = f"{group.name}:{user}"
    await hub.feeds.start_build(app, group, feed)
    limit = group.max_length if not group.is_aggregated else group.max_length * REPLAY_FACTOR
    ids = await source_ids(hub, app, group, user, limit)
    if group.is_aggregated:
        bodies = await hub.activities.get_many(app, ids)
        activities = [bodies[i] for i in reversed(ids) if i in bodies]
        n = len(activities)
        await hub.feeds.fill(app, group, feed, activities)
    else:  # a flat feed holds ids only: check the activities exist, parse no bodies
        alive = await _alive(hub, app, ids)
        kept = [i for i in reversed(ids) if i in alive]
        n = len(kept)
        await hub.feeds.fill_ids(app, group, feed, kept)
    if n > 1000:
        log.info("rebuilt %s/%s from %d activities", app, feed, n)
    await hub.feeds.finish_build(app, feed)
    return n


async def _alive(hub: Hub, app: str, ids: list[str]) -> set[str]:
    """The ids whose activity exists and is not deleted (cached bodies first, as get_many)."""
    if not ids:
        return set()
    k = hub.activities.keys(app)
    cached = await hub.redis.mget([k.activity(i) for i in ids])
    alive = {i for i, raw in zip(ids, cached) if raw is not None}
    missing = [i for i in ids if i not in alive]
    if missing:
        alive.update(await hub.activities.get_many(app, missing))
    return alive


async def source_ids(hub: Hub, app: str, group: FeedGroup, user: str, limit: int) -> list[str]:
    """The newest ``limit`` activity ids the feed should hold, newest first."""
    store = hub.activities
    queries: list[Awaitable[list[str]]] = [store.target_ids(app, f"{group.name}:{user}", limit)]
    if group.name == "user":
        queries.append(store.user_activity_ids(app, user, limit))
    if group.follows == "user":
        celebrities, following, kept = await asyncio.gather(
            hub.follows.celebrities(app), hub.follows.following(app, user), hub.follows.kept_history(app, user)
        )
        for f in following:
            if f.followee in celebrities:
                continue  # merged in when read
            queries.append(store.user_activity_ids(app, f.followee, limit, above=f.since))
            if f.copy and f.since:
                queries.append(store.user_activity_ids(app, f.followee, f.copy, upto=f.since))
        for k in kept:
            queries.append(store.user_activity_ids(app, k.followee, limit, above=k.since, upto=k.until))
            if k.copy and k.since:
                queries.append(store.user_activity_ids(app, k.followee, k.copy, upto=k.since))
    found: set[str] = set()
    for ids in await asyncio.gather(*queries):
        found.update(ids)
    return sorted(found, reverse=True)[:limit]
