"""The readers of flat and aggregated feeds (:class:`hub.ops.pages.FeedReader`).

A hot read is one Redis round trip: one script (``FeedCache.read``) checks the feed is
built, records the user as active, and returns the page's ids or group summaries with
their stored bodies, the marks, both counts and the celebrities. Whatever is missing
(feed not built, marks or celebrities not loaded) is loaded the usual way and the script
asked again; when the caches keep disappearing under it, the reader reads step by step.
The answer is spliced from the stored body texts. An aggregated feed's first page comes
rendered from the page cache when no change happened since it was rendered
(hub/storage/feedcache.py), else it is rendered (hub/ops/feedpage.py) and stored. A feed that may hold archived entries (the
read script says so) is read by hub/ops/filtered.py instead, which leaves them out.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from hub.core import Hub
from hub.domain.aggregation import MAX_ACTIVITIES, MAX_ACTORS
from hub.ops import feedpage
from hub.ops.filtered import read_filtered
from hub.ops.pages import Page, PageRequest, celebrity_ids, feed_counts, flat_bodies, merge_ids
from hub.ops.rebuild import ensure_built, rebuild
from hub.storage.bodytexts import body_texts
from hub.storage.feedcache import HotRead
from hub.storage.groupreads import SENTINEL, GroupSummary
from hub.storage.marks import ARCHIVED_FLAG


async def _hot(hub: Hub, req: PageRequest, token: str) -> HotRead | None:
    """The read script's answer once nothing is missing; None when the caches keep
    disappearing (the caller then reads step by step)."""
    group, feed = req.group, req.feed
    body_prefix = hub.activities.keys(req.app).activity("")
    for _ in range(4):
        r = await hub.feeds.read(req.app, group, feed, req.user, req.limit + 1, req.cursor, req.limit, body_prefix,
                                 MAX_ACTIVITIES, group.follows == "user", MAX_ACTORS, page_token=token)
        if r.missing == "feed":  # load the marks meanwhile: the next ask would miss them too
            await asyncio.gather(rebuild(hub, req.app, group, req.user), hub.marks.load(req.app, feed))
        elif r.missing == "marks":
            await hub.marks.load(req.app, feed)
        elif r.missing == "celebrities":
            await hub.follows.celebrities(req.app)  # loads the set
        else:
            return r
    return None


async def _steps_prologue(hub: Hub, req: PageRequest) -> bool:
    """Whether the feed may hold archived entries (then the filtered path reads it)."""
    await ensure_built(hub, req.app, req.group, req.user)
    await hub.follows.touch_active(req.app, req.user, time.time())
    return ARCHIVED_FLAG in await hub.marks.load(req.app, req.feed)


class FlatReader:
    """Recency-ordered flat feeds; followed celebrities' activities are merged in."""

    async def read(self, hub: Hub, req: PageRequest) -> Page:
        r = await _hot(hub, req, "")
        if r is None:
            return await self._steps(hub, req)
        if r.archived:  # archived entries stay out of the default view (hub/ops/filtered.py)
            return await read_filtered(hub, req, "all")
        ids = r.ids
        if len(r.celebrities - {SENTINEL}) > 0:
            ids = merge_ids(ids, await celebrity_ids(hub, req.app, req.user, req.limit + 1, req.cursor))
        results, nxt = await flat_bodies(hub, req.app, ids, req.limit, r.bodies)
        return Page(results, nxt, r.unseen, r.unread)

    async def _steps(self, hub: Hub, req: PageRequest) -> Page:
        if await _steps_prologue(hub, req):
            return await read_filtered(hub, req, "all")
        ids = await hub.feeds.flat_ids(req.app, req.feed, req.limit + 1, req.cursor)
        if req.group.follows == "user":
            ids = merge_ids(ids, await celebrity_ids(hub, req.app, req.user, req.limit + 1, req.cursor))
        results, nxt = await flat_bodies(hub, req.app, ids, req.limit)
        counts = await feed_counts(hub, req.app, req.group, req.feed)
        return Page(results, nxt, counts["unseen"], counts["unread"])


class AggregatedReader:
    """Aggregated and notification feeds: one entry per group, rendered by
    :mod:`hub.ops.feedpage`, the first page kept in the page cache."""

    async def read(self, hub: Hub, req: PageRequest) -> Page:
        # A page cache reservation (hub/storage/feedcache.py): unique per read across
        # processes, so 64 random bits and no counter kept between reads.
        token = secrets.token_hex(8) if req.cursor is None else ""
        r = await _hot(hub, req, token)
        if r is None:
            return await self._steps(hub, req)
        if r.archived:
            return await read_filtered(hub, req, "all")
        marks = dict(r.marks)
        marks.pop("!", None)
        if r.page is not None:
            results, nxt = feedpage.from_text(req.group, r.page, marks)
        else:
            results, nxt = await self._render(hub, req, r.groups, marks, r.bodies, token)
        return Page(results, nxt, r.unseen, r.unread)

    async def _steps(self, hub: Hub, req: PageRequest) -> Page:
        if await _steps_prologue(hub, req):
            return await read_filtered(hub, req, "all")
        groups = await hub.feeds.page_groups(req.app, req.feed, req.limit + 1, req.cursor)
        marks = await hub.marks.load(req.app, req.feed)
        results, nxt = await self._render(hub, req, groups, marks, {}, "")
        counts = await feed_counts(hub, req.app, req.group, req.feed)
        return Page(results, nxt, counts["unseen"], counts["unread"])

    async def _render(self, hub: Hub, req: PageRequest, groups: list[GroupSummary], marks: dict[str, str],
                      cached: dict[str, str], token: str) -> tuple[list[str], str | None]:
        """A page of group entries from the groups' summaries: the per-member work was
        done inside Redis. A first page (``token``) whose bodies were all cached is kept
        in the page cache."""
        page, more = groups[: req.limit], len(groups) > req.limit
        ids = [i for g in page for i in g.newest]
        bodies, complete = cached, all(i in cached for i in ids)
        if not complete:  # hot reads have every body already
            bodies = await body_texts(hub.activities, req.app, ids, cached)
        rows = feedpage.heads(page, bodies, hub.verb_times)
        nxt = page[-1].cursor if more and page else None
        if token and complete:
            # Only then: the read script checks that the bodies a page holds are still cached.
            text = feedpage.page_text(req.limit, nxt, ids, rows)
            if text is not None:
                hub.feeds.keep_page(req.app, req.feed, token, text)
        return feedpage.with_marks(req.group, rows, marks), nxt
