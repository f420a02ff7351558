"""Reading ranked flat feeds (``ranking = "weighted"``; the order in hub/domain/ranking.py).

The feed's members, trimming and rebuilds are a recency feed's; the order comes from its
rank index (hub/storage/rankindex.py). The cursor is still the last id of a page (the
``next`` of the previous page): its score is recomputed from its body, so paging neither
repeats nor skips an entry while new ones arrive, whatever their rank. Followed
celebrities' activities are merged in by the same rule, from their newest
``max_length``.
"""

from __future__ import annotations

import time

from hub.config import FeedGroup
from hub.core import Hub
from hub.domain.ranking import page_after
from hub.errors import InvalidRequest
from hub.ops.pages import Page, PageRequest, celebrity_ids, feed_counts, flat_bodies
from hub.ops.rebuild import ensure_built
from hub.storage.rankindex import score_of


class RankedReader:
    """Ranked flat feeds (:class:`hub.ops.pages.FeedReader`)."""

    async def read(self, hub: Hub, req: PageRequest) -> Page:
        app, group, user, limit, feed = req.app, req.group, req.user, req.limit, req.feed
        await ensure_built(hub, app, group, user)
        await hub.follows.touch_active(app, user, time.time())
        after = await _cursor_key(hub, app, group, req.cursor)
        entries = await hub.feeds.ranks.page(app, feed, limit + 1, after)
        if group.follows == "user" and await hub.follows.celebrities(app):
            pulled = await celebrity_ids(hub, app, user, group.max_length, None)
            bodies = await hub.activities.get_many(app, pulled)
            entries += [(score_of(group, a), a.id) for a in bodies.values()]
        ids = page_after(entries, after, limit + 1)
        results, nxt = await flat_bodies(hub, app, ids, limit)
        counts = await feed_counts(hub, app, group, feed)
        return Page(results, nxt, counts["unseen"], counts["unread"])


async def _cursor_key(hub: Hub, app: str, group: FeedGroup, cursor: str | None) -> tuple[float, str] | None:
    if cursor is None:
        return None
    # A deleted activity still has its body (marked deleted): its page's next stays usable.
    activity = await hub.activities.get_one(app, cursor, include_deleted=True)
    if activity is None:
        raise InvalidRequest("id_lt is not a cursor this feed gave out (use its next)", field="id_lt")
    return score_of(group, activity), activity.id
