"""What frames carry beyond the change message: current entries and counts of a feed.

A change message names ids only; the entry (flat: the activity, aggregated: its group as
the read API shows it) and the feed's counts are read from Redis when the frame is built.
"""

from __future__ import annotations

import json
from typing import Any

from hub.config import FeedGroup
from hub.core import Hub
from hub.domain.activity import split_feed_id
from hub.ops.reads import MAX_GROUP_ACTIVITIES, group_entry
from hub.storage.feedcache import GroupState


class FeedView:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def group(self, feed: str) -> FeedGroup:
        group, _ = split_feed_id(feed)
        return self.hub.group(group)

    async def entries(self, app: str, feed: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Current entries of a feed by id (flat: activities; aggregated: groups)."""
        group = self.group(feed)
        ids = list(dict.fromkeys(ids))
        if not group.is_aggregated:
            bodies = await self.hub.activities.get_many(app, ids)
            return {i: bodies[i].to_json() for i in ids if i in bodies}
        k = self.hub.feeds.keys(app)
        raws = await self.hub.redis.hmget(k.agg_state(feed), ids)
        states = []
        for gid, raw in zip(ids, raws):
            if raw:
                st = json.loads(raw)
                states.append(GroupState(gid, st["k"], st["m"], st["c"], st["n"]))
        if not states:
            return {}
        newest = {st.id: sorted(st.members, reverse=True)[:MAX_GROUP_ACTIVITIES] for st in states}
        bodies = await self.hub.activities.get_many(app, [i for v in newest.values() for i in v])
        marks = await self.hub.marks.load(app, feed)
        notification = group.kind == "notification"
        return {st.id: group_entry(st, [bodies[i] for i in newest[st.id] if i in bodies], marks, notification)
                for st in states}

    async def counts(self, app: str, feed: str) -> dict[str, int]:
        group = self.group(feed)
        k = self.hub.feeds.keys(app)
        if group.is_aggregated:
            return await self.hub.marks.counts(app, feed, k.agg(feed), k.agg_state(feed))
        return await self.hub.marks.counts(app, feed, k.feed(feed), None)
