"""What frames carry beyond the change message: current entries and counts of a feed.

A change message names ids only; the entry (flat: the activity, aggregated: its group as
the read API shows it) and the feed's counts are read from Redis when the frame is built.

``frame_parts`` is the dispatcher's path: group summaries (counts, newest actors and
ids, each O(log n) in Redis whatever the group's size), marks and both counts in one
pipelined round trip, then the bodies in one MGET (aggregated feeds), instead of five
dependent round trips. Each round trip on a busy event loop costs a scheduling delay,
which is what 202-to-frame latency is made of.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hub.config import FeedGroup
from hub.core import Hub
from hub.domain.activity import split_feed_id
from hub.ops.reads import MAX_GROUP_ACTIVITIES, MAX_GROUP_ACTORS, group_entry
from hub.storage.feedcache import GroupSummary, parse_summaries
from hub.storage.marks import COUNT_LUA, KINDS

_COUNT = COUNT_LUA + "return count(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2] == '1')\n"


class FeedView:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._count = hub.redis.register_script(_COUNT)

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
        states = await self.hub.feeds.summaries(app, feed, ids, MAX_GROUP_ACTIVITIES, MAX_GROUP_ACTORS)
        if not states:
            return {}
        marks = await self.hub.marks.load(app, feed)
        return await self._groups(app, group, states, marks)

    async def _groups(self, app: str, group: FeedGroup, states: list[GroupSummary],
                      marks: dict[str, str]) -> dict[str, dict[str, Any]]:
        if not states:
            return {}
        bodies = await self.hub.activities.get_many(app, [i for st in states for i in st.newest])
        notification = group.kind == "notification"
        return {st.id: group_entry(st, [bodies[i] for i in st.newest if i in bodies], marks, notification)
                for st in states}

    async def frame_parts(self, app: str, feed: str, ids: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        """``(entries(ids), counts)`` in as few round trips as possible (see the module doc)."""
        group = self.group(feed)
        ids = list(dict.fromkeys(ids))
        k = self.hub.feeds.keys(app)
        agg = group.is_aggregated
        order = k.agg(feed) if agg else k.feed(feed)
        mk = k.marks(feed)
        pipe = self.hub.redis.pipeline(transaction=False)
        if agg:
            await self.hub.feeds.queue_summaries(pipe, app, feed, ids, MAX_GROUP_ACTIVITIES, MAX_GROUP_ACTORS)
        pipe.hgetall(mk)
        for kind in KINDS:
            await self._count(keys=[order, mk, k.agg_state(feed) if agg else order], args=[kind, "1" if agg else "0"],
                              client=pipe)
        res = await pipe.execute()
        raws = res.pop(0) if agg else None
        marks, seen, read = res
        if "!" not in marks:
            # Marks not cached (the subscription loads them, so rare): the general path.
            entries, counts = await asyncio.gather(self.entries(app, feed, ids), self.counts(app, feed))
            return entries, counts
        marks.pop("!")
        counts = {"unseen": max(0, int(seen)), "unread": max(0, int(read))}
        if not agg:
            bodies = await self.hub.activities.get_many(app, ids)
            return {i: bodies[i].to_json() for i in ids if i in bodies}, counts
        return await self._groups(app, group, parse_summaries(raws or []), marks), counts

    async def counts(self, app: str, feed: str) -> dict[str, int]:
        group = self.group(feed)
        k = self.hub.feeds.keys(app)
        if group.is_aggregated:
            return await self.hub.marks.counts(app, feed, k.agg(feed), k.agg_state(feed))
        return await self.hub.marks.counts(app, feed, k.feed(feed), None)
