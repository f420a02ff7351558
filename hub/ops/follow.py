"""Follow and unfollow, with the copy of history and its removal.

Both are idempotent: following twice keeps the first follow, unfollowing a user one does
not follow changes nothing. They touch only cached feeds; a feed that is not cached is
rebuilt from the follow graph when read, which gives the same result.
"""

from __future__ import annotations

import logging

from hub.core import Hub
from hub.storage.follows import Follow

log = logging.getLogger(__name__)

# Unfollow removes at most this many of the followee's newest activities from caches:
# older ones have already been trimmed from any feed of the default length.
REMOVE_DEPTH = 5000


async def follow(hub: Hub, app: str, follower: str, followee: str, copy: int) -> bool:
    """Returns False when the follow already existed (nothing changes but the cache,
    which is made sure to hold it)."""
    existing = await hub.follows.get(app, follower, followee)
    if existing is not None:
        # It may exist only because an earlier try, answered 503, had its logged batch
        # replayed from the batch log: that try never added the follower to the cache.
        await hub.follows.reassert(app, existing, "add")
        return False
    newest = await hub.activities.user_activity_ids(app, followee, 1)
    await hub.follows.add(app, Follow(follower, followee, newest[0] if newest else None, copy))
    if copy and newest and followee not in await hub.follows.celebrities(app):
        ids = await hub.activities.user_activity_ids(app, followee, copy)
        bodies = await hub.activities.get_many(app, ids)
        if len(ids) >= 1000:
            log.info("%s: copying %d activities of %s into %s's feeds", app, len(ids), followee, follower)
        for group in hub.settings.follower_groups("user"):
            feed = group.feed_of(follower)
            if await hub.feeds.is_built(app, group, feed):
                await hub.feeds.fill(app, group, feed, [bodies[i] for i in reversed(ids) if i in bodies])
    return True


async def unfollow(hub: Hub, app: str, follower: str, followee: str, keep_history: bool) -> bool:
    existing = await hub.follows.get(app, follower, followee)
    if existing is None:
        # As in follow: an earlier try's unfollow may have been replayed without its cache change.
        await hub.follows.reassert(app, Follow(follower, followee, None, 0), "remove")
        return False
    newest = await hub.activities.user_activity_ids(app, followee, 1)
    until = newest[0] if newest else None
    await hub.follows.remove(app, existing, keep_until=until if keep_history and until else None)
    if keep_history:
        return True
    ids = await hub.activities.user_activity_ids(app, followee, REMOVE_DEPTH)
    bodies = await hub.activities.get_many(app, ids)
    for group in hub.settings.follower_groups("user"):
        feed = group.feed_of(follower)
        for a in bodies.values():
            await hub.feeds.remove(app, group, [feed], a)
    return True
