"""What frames carry beyond the change message: current entries and counts of a feed.

A change message names ids only; the entry (flat: the activity, aggregated: its group as
the read API shows it, rendered by hub/ops/feedpage.py as pages are) and the feed's
counts are read from Redis when the frame is built.

``frame_parts`` is the dispatcher's path: group summaries (counts, newest actors and
ids, each O(log n) in Redis whatever the group's size), marks and both counts in one
pipelined round trip (hub/storage/feedstate.py), then the bodies in one MGET
(aggregated feeds), instead of five dependent round trips. Each round trip on a busy
event loop costs a scheduling delay, which is what 202-to-frame latency is made of.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hub.config import FeedGroup
from hub.core import Hub
from hub.domain.activity import split_feed_id
from hub.ops import feedpage
from hub.storage.bodytexts import body_texts
from hub.storage.feedstate import feed_state
from hub.storage.groupreads import GroupSummary


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
            return await self._activities(app, ids)
        states = await self.hub.feeds.summaries(app, feed, ids)
        if not states:
            return {}
        marks = await self.hub.marks.load(app, feed)
        return await self._groups(app, group, states, marks)

    async def _activities(self, app: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        bodies = await self.hub.activities.get_many(app, ids)
        return {i: bodies[i].to_json() for i in ids if i in bodies}

    async def _groups(self, app: str, group: FeedGroup, states: list[GroupSummary],
                      marks: dict[str, str]) -> dict[str, dict[str, Any]]:
        if not states:
            return {}
        bodies = await body_texts(self.hub.activities, app, [i for st in states for i in st.newest])
        return feedpage.entries(group, states, bodies, marks)

    async def frame_parts(self, app: str, feed: str, ids: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        """``(entries(ids), counts)`` in as few round trips as possible (see the module doc)."""
        group = self.group(feed)
        ids = list(dict.fromkeys(ids))
        state = await feed_state(self.hub.feeds, self.hub.marks, app, group, feed, ids)
        if state is None:
            # Marks not cached (the subscription loads them, so rare): the general path.
            entries, counts = await asyncio.gather(self.entries(app, feed, ids), self.counts(app, feed))
            return entries, counts
        if not group.is_aggregated:
            return await self._activities(app, ids), state.counts
        return await self._groups(app, group, state.summaries, state.marks), state.counts

    async def counts(self, app: str, feed: str) -> dict[str, int]:
        group = self.group(feed)
        return await self.hub.marks.counts(app, group, feed)
