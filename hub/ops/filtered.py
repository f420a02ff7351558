"""Filtered views of a feed: ``all`` (not archived), ``unread``, ``unseen``, ``archived``.

The default view (``all``) is read by the hot path (hub/ops/readers.py) while the feed
holds no archive mark; the others, and ``all`` of a feed with archived entries, come from
here: the order set is scanned below the cursor in chunks, each entry kept when its marks
(hub/storage/marks.py, hub/storage/archive.py) pass the filter, until ``limit + 1`` are
kept or the feed ends. The scan is bounded by the feed's ``max_length``.

Same cursors as the default view (the last entry's order member: a flat feed's activity
id, an aggregated feed's ``<newest id>|<group id>``), so paging never repeats or skips an
entry while new ones arrive: new entries sort above every cursor already given out. An
entry whose state changes while someone pages (read, archived, joined by an activity)
is shown or not by its state when its page is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from hub.core import Hub
from hub.ops import feedpage
from hub.ops.pages import Page, PageRequest, celebrity_ids, feed_counts, flat_bodies, merge_ids
from hub.ops.rebuild import ensure_built
from hub.storage.archive import is_archived
from hub.storage.bodytexts import body_texts
from hub.storage.groupreads import SENTINEL
from hub.storage.marks import is_marked

FILTERS = ("all", "unread", "unseen", "archived")
SCAN = 200  # order set members read per round trip

Keep = Callable[[Mapping[str, str], str, str], bool]  # (marks, entry, newest) -> shown


def _keep(name: str) -> Keep:
    if name == "archived":
        return is_archived
    if name == "unread":
        return lambda m, e, n: not is_archived(m, e, n) and not is_marked(m, "read", e, n)
    if name == "unseen":
        return lambda m, e, n: not is_archived(m, e, n) and not is_marked(m, "seen", e, n)
    return lambda m, e, n: not is_archived(m, e, n)


async def read_filtered(hub: Hub, req: PageRequest, name: str) -> Page:
    """One page of the filtered view ``name`` (one of FILTERS) with the feed's counts."""
    app, group, feed = req.app, req.group, req.feed
    await ensure_built(hub, app, group, req.user)
    await hub.follows.touch_active(app, req.user, time.time())
    marks = await hub.marks.load(app, feed)
    keep, agg = _keep(name), group.is_aggregated
    order = hub.feeds.order_key(hub.feeds.keys(app), group, feed)
    picked: list[str] = []
    top = req.cursor
    while len(picked) <= req.limit:
        chunk: list[str] = await hub.redis.zrevrangebylex(order, f"({top}" if top else "+", f"({SENTINEL}", 0, SCAN)
        for m in chunk:
            newest, _, gid = m.partition("|") if agg else (m, "", m)
            if keep(marks, gid, newest):
                picked.append(m)
                if len(picked) > req.limit:
                    break
        if len(chunk) < SCAN:
            break
        top = chunk[-1]
    if agg:
        results, nxt = await _groups(hub, req, picked, marks)
    else:
        if name == "all" and group.follows == "user":  # followed celebrities are never archived
            picked = merge_ids(picked, await celebrity_ids(hub, app, req.user, req.limit + 1, req.cursor))
        results, nxt = await flat_bodies(hub, app, picked, req.limit)
    counts = await feed_counts(hub, app, group, feed)
    return Page(results, nxt, counts["unseen"], counts["unread"])


async def _groups(hub: Hub, req: PageRequest, members: list[str],
                  marks: Mapping[str, str]) -> tuple[list[str], str | None]:
    page, more = members[: req.limit], len(members) > req.limit
    summaries = await hub.feeds.summaries(req.app, req.feed, [m.split("|", 1)[1] for m in page])
    bodies = await body_texts(hub.activities, req.app, [i for g in summaries for i in g.newest])
    rows = feedpage.heads(summaries, bodies, hub.verb_times)
    return feedpage.with_marks(req.group, rows, dict(marks)), (page[-1] if more and page else None)
