"""Archiving and unarchiving entries of a feed (docs/api.md, Archive).

An archived entry leaves the default view and the counts until an activity joins it
(hub/storage/archive.py). After each change the counts and the entries it touched are
published as an ``archived`` (or ``unarchived``) frame to every open connection of the
user, like ``counts`` after a mark. Idempotent: archiving an archived entry again or
unarchiving one that is not archived changes nothing but still answers the counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.config import FeedGroup
from hub.core import Hub
from hub.ops.pages import feed_counts
from hub.ops.rebuild import ensure_built
from hub.storage.archive import ArchiveStore, is_archived
from hub.storage.changes import publish


async def archive(hub: Hub, app: str, group: FeedGroup, user: str, ids: Sequence[str] | None) -> dict[str, int]:
    """Archive entries (``ids`` None: every entry the feed holds now); the counts after."""
    feed = group.feed_of(user)
    await ensure_built(hub, app, group, user)
    store = ArchiveStore(hub.marks, hub.feeds)
    if ids is None:
        marks = await store.all_entries(app, group, feed)
    else:
        marks = await hub.feeds.entry_newest(app, group, feed, ids)  # entries the feed holds
    await store.archive(app, feed, marks)
    await hub.marks.prune_gone(app, group, feed)
    return await _publish(hub, app, group, feed, "archived", list(marks))


async def unarchive(hub: Hub, app: str, group: FeedGroup, user: str, ids: Sequence[str] | None) -> dict[str, int]:
    """Bring archived entries back (``ids`` None: every one); the counts after."""
    feed = group.feed_of(user)
    await ensure_built(hub, app, group, user)
    store = ArchiveStore(hub.marks, hub.feeds)
    entries = await store.archived(app, feed) if ids is None else list(dict.fromkeys(ids))
    marks = await hub.marks.load(app, feed)
    held = await hub.feeds.entry_newest(app, group, feed, entries)
    back = [e for e in entries if e in held and is_archived(marks, e, held[e])]  # the frame names these
    await store.unarchive(app, feed, entries)
    await hub.marks.prune_gone(app, group, feed)
    return await _publish(hub, app, group, feed, "unarchived", back)


async def _publish(hub: Hub, app: str, group: FeedGroup, feed: str, op: str, ids: list[str]) -> dict[str, int]:
    counts = await feed_counts(hub, app, group, feed)
    msg = {"app": app, "feed": feed, "op": op, "ids": ids, **counts}
    await publish(hub.redis, hub.feeds.prefix, app, feed, msg)
    return counts
