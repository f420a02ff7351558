"""Archived entries: a third kind of mark beside seen and read (hub/storage/marks.py).

An archive mark records the newest activity id an entry had when it was archived, in the
same ``feed_marks`` table (kind ``archived``) and the same Redis hash (``archived:<entry>``),
so it is durable, reloaded after a Redis flush, and pruned with the entries that leave
the feed. An entry is archived while its newest id is at most its mark: an activity that
joins an archived group raises the newest id and brings the group back, unseen and
unread, without anyone writing a mark. There is no archive watermark: "archive all"
writes one mark per entry the feed holds (bounded by ``max_length``), so unarchiving one
entry is deleting its mark.

The hash field ``@`` says that archived marks may be present: the hot read
(lua/read.lua) returns it, and only then does the default view take the filtered path
(hub/ops/filtered.py) that leaves archived entries out. It is set before the marks are
written and cleared (atomically, by a script that finds no archive mark left) after the
last one is deleted, so a reader never misses an archived entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hub.config import FeedGroup
from hub.storage import scripts
from hub.storage.feedcache import FeedCache
from hub.storage.groupreads import parse_state
from hub.storage.marks import ARCHIVED, ARCHIVED_FLAG, MarkStore


def is_archived(marks: Mapping[str, str], entry: str, newest: str) -> bool:
    return marks.get(f"{ARCHIVED}:{entry}", "") >= newest


class ArchiveStore:
    def __init__(self, marks: MarkStore, feeds: FeedCache) -> None:
        self.marks = marks
        self.feeds = feeds
        self._clear = marks.redis.register_script(scripts.ARCHIVE_CLEAR_FLAG)

    async def all_entries(self, app: str, group: FeedGroup, feed: str) -> dict[str, str]:
        """``entry -> newest id`` of every entry the (built) feed holds."""
        k = self.feeds.keys(app)
        if group.is_aggregated:
            raws: dict[str, str] = await self.feeds.redis.hgetall(k.agg_state(feed))  # type: ignore[misc]
            return {gid: parse_state(raw)[2] for gid, raw in raws.items()}
        ids: list[str] = await self.feeds.redis.zrange(k.feed(feed), 0, -1)
        return {i: i for i in ids if i != "!"}

    async def archive(self, app: str, feed: str, marks: Mapping[str, str]) -> None:
        """Archive entries (``entry -> newest id``): flag first, then the marks."""
        if not marks:
            return
        await self.marks.load(app, feed)
        await self.marks.redis.hset(self.marks.keys(app).marks(feed), ARCHIVED_FLAG, "1")  # type: ignore[misc]
        await self.marks.mark(app, feed, ARCHIVED, marks)

    async def archived(self, app: str, feed: str) -> list[str]:
        """The entries holding an archive mark (archived or, if changed since, not any more)."""
        marks = await self.marks.load(app, feed)
        return [f.split(":", 1)[1] for f in marks if f.startswith(ARCHIVED + ":")]

    async def unarchive(self, app: str, feed: str, entries: Sequence[str]) -> None:
        """Delete the archive marks of ``entries`` (durably first), then the flag if none is left."""
        await self.marks.load(app, feed)
        await self.marks.prune(app, feed, ARCHIVED, list(entries))
        await self._clear(keys=[self.marks.keys(app).marks(feed)])
