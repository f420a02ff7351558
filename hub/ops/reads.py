"""Reading feeds and marking them seen or read.

:func:`read_feed` hands a page request to the reader of the feed's kind (flat and
aggregated: hub/ops/readers.py, ranked: hub/ops/ranked.py; the interface and what they
share: hub/ops/pages.py). Pages are cut by cursor (``id_lt``): a flat feed's cursor is
the last activity id, an aggregated feed's the last group's ``<newest id>|<group id>``.
New entries always sort above the cursor, so paging never repeats or skips an entry
while new ones arrive. (A group that gains an activity while someone pages moves to the
top: it is new again.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hub.config import FeedGroup
from hub.core import Hub
from hub.domain.ids import ID_LENGTH, is_valid_id
from hub.errors import InvalidRequest
from hub.ops.filtered import FILTERS, read_filtered
from hub.ops.pages import FeedReader, Page, PageRequest, feed_counts
from hub.ops.ranked import RankedReader
from hub.ops.readers import AggregatedReader, FlatReader
from hub.ops.rebuild import ensure_built
from hub.storage.changes import publish_counts
from hub.storage.groupreads import GroupSummary

__all__ = ["Page", "check_cursor", "feed_counts", "mark", "read_feed", "reader_of"]

_GROUP_CURSOR = re.compile(r"^[0-9A-Z]{%d}\|[0-9a-f]{1,64}$" % ID_LENGTH)
_FLAT, _AGGREGATED, _RANKED = FlatReader(), AggregatedReader(), RankedReader()


def reader_of(group: FeedGroup) -> FeedReader:
    """The one reader of a feed group's kind."""
    if group.is_ranked:
        return _RANKED
    return _AGGREGATED if group.is_aggregated else _FLAT


def check_cursor(group: FeedGroup, cursor: str | None) -> str | None:
    if cursor is None or cursor == "":
        return None
    ok = _GROUP_CURSOR.match(cursor) if group.is_aggregated else is_valid_id(cursor)
    if not ok:
        raise InvalidRequest("id_lt is not a cursor this feed gave out (use its next)", field="id_lt")
    return cursor


async def read_feed(hub: Hub, app: str, group: FeedGroup, user: str, limit: int, cursor: str | None,
                    filter: str = "all") -> Page:
    """One page with its counts (the readers say how: hub/ops/readers.py); a ``filter``
    other than ``all`` pages a filtered view (hub/ops/filtered.py)."""
    if filter not in FILTERS:
        raise InvalidRequest(f"filter must be one of {', '.join(FILTERS)}", field="filter")
    req = PageRequest(app, group, user, limit, check_cursor(group, cursor))
    if filter == "all":
        return await reader_of(group).read(hub, req)
    if group.is_ranked:
        raise InvalidRequest("a ranked feed has no filtered views", field="filter")
    return await read_filtered(hub, req, filter)


async def mark(
    hub: Hub, app: str, group: FeedGroup, user: str, kind: str, ids: Sequence[str] | None
) -> dict[str, int]:
    """Mark entries (or all, with ``ids`` None) seen or read; read implies seen.

    Marks of entries that have left the feed are dropped meanwhile, so the marks stay
    bounded by the feed (hub/storage/marks.py).
    """
    feed = group.feed_of(user)
    await ensure_built(hub, app, group, user)
    kinds = ("seen", "read") if kind == "read" else ("seen",)
    if ids is None:
        top = await (hub.feeds.page_groups(app, feed, 1) if group.is_aggregated else hub.feeds.flat_ids(app, feed, 1))
        if top:
            watermark = top[0].newest_id if isinstance(top[0], GroupSummary) else str(top[0])
            existing = await hub.marks.load(app, feed)
            for k in kinds:
                await hub.marks.mark(app, feed, k, {"*": watermark})
                stale = [f.split(":", 1)[1] for f, m in existing.items() if f.startswith(f"{k}:") and f != f"{k}:*"
                         and m <= watermark]
                await hub.marks.prune(app, feed, k, stale)
    else:
        marks = await hub.feeds.entry_newest(app, group, feed, ids)
        for k in kinds:
            await hub.marks.mark(app, feed, k, marks)
    await hub.marks.prune_gone(app, group, feed)
    counts = await feed_counts(hub, app, group, feed)
    await publish_counts(hub.redis, hub.feeds.prefix, app, feed, counts)  # to every open socket of the user
    return counts
