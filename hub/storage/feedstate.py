"""A feed's current entries' summaries, marks and counts in one round trip (websocket frames).

Each round trip on a busy event loop costs a scheduling delay, which is what
202-to-frame latency is made of, so the gateway's dispatcher asks for all three at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hub.config import FeedGroup
from hub.storage.feedcache import FeedCache
from hub.storage.groupreads import GroupSummary, parse_summaries
from hub.storage.marks import MarkStore, counts_of


@dataclass(frozen=True)
class FeedState:
    summaries: list[GroupSummary]  # of the groups asked for (aggregated feeds), in their order
    marks: dict[str, str]
    counts: dict[str, int]


async def feed_state(feeds: FeedCache, marks: MarkStore, app: str, group: FeedGroup, feed: str,
                     gids: Sequence[str]) -> FeedState | None:
    """The summaries of ``gids`` (aggregated feeds; none for a flat one), the marks and
    both counts, read together; None when the marks are not cached (then the counts
    would be wrong: load them and read the usual way)."""
    pipe = feeds.redis.pipeline(transaction=False)
    agg = group.is_aggregated
    if agg:
        await feeds.queue_summaries(pipe, app, feed, gids)
    pipe.hgetall(marks.keys(app).marks(feed))
    await marks.queue_counts(pipe, app, group, feed)
    res = await pipe.execute()
    raws = res.pop(0) if agg else []
    found, seen, read = res
    if "!" not in found:
        return None
    found.pop("!")
    return FeedState(parse_summaries(raws or []), found, counts_of(seen, read))
