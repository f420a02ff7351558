"""Feeds' current entries' summaries, marks and counts in one round trip (websocket frames).

Each round trip on a busy event loop costs a scheduling delay, which is what
202-to-frame latency is made of, and each one costs the gateway's CPU, so the dispatcher
asks for all three at once, for every feed of a pub/sub batch together, in one trip
(hub/storage/trip.py: scripts as plain EVALSHA; on a Redis Cluster a round trip per node).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.config import FeedGroup
from hub.storage.feedcache import FeedCache
from hub.storage.groupreads import GroupSummary, parse_summaries
from hub.storage.marks import MarkStore, counts_of
from hub.storage.trip import Trip


@dataclass(frozen=True)
class FeedState:
    summaries: list[GroupSummary]  # of the groups asked for (aggregated feeds), in their order
    marks: dict[str, str]
    counts: dict[str, int]


# One feed's question: (app, its group, feed id, the group ids wanted: aggregated feeds)
Ask = tuple[str, FeedGroup, str, Sequence[str]]


async def feed_states(feeds: FeedCache, marks: MarkStore,
                      asks: Sequence[Ask]) -> list[FeedState | None | BaseException]:
    """For each feed asked, in that order: the summaries of its ``gids`` (aggregated
    feeds; none for a flat one), its marks and both counts, all feeds read in one
    pipeline; None for a feed whose marks are not cached (then the counts would be wrong:
    load them and read the usual way). A command that failed fails its feed only (the
    error in that feed's place); a lost connection raises, for all."""
    trip = Trip(feeds.redis)
    spans: list[tuple[bool, int]] = []  # per feed: aggregated, how many answers
    for app, group, feed, gids in asks:
        before = len(trip.pipe)
        if group.is_aggregated:
            feeds.queue_summaries(trip, app, feed, gids)
        trip.pipe.hgetall(marks.keys(app).marks(feed))
        marks.queue_counts(trip, app, group, feed)
        spans.append((group.is_aggregated, len(trip.pipe) - before))
    res = await trip.execute(raise_on_error=False) if asks else []
    out: list[FeedState | None | BaseException] = []
    at = 0
    for agg, n in spans:
        part, at = res[at : at + n], at + n
        err = next((r for r in part if isinstance(r, BaseException)), None)
        out.append(err if err is not None else _state(agg, part))
    return out


def _state(agg: bool, res: list[Any]) -> FeedState | None:
    raws = res.pop(0) if agg else []
    found, seen, read = res
    if "!" not in found:
        return None
    found.pop("!")
    return FeedState(parse_summaries(raws or []), found, counts_of(seen, read))
