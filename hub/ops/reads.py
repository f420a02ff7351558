"""Reading feeds and marking them seen or read.

Pages are cut by cursor (``id_lt``): a flat feed's cursor is the last activity id, an
aggregated feed's the last group's ``<newest id>|<group id>``. New entries always sort
above the cursor, so paging never repeats or skips an entry while new ones arrive. (A
group that gains an activity while someone pages moves to the top: it is new again.)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.config import FeedGroup
from hub.core import Hub
from hub.domain.ids import ID_LENGTH, is_valid_id
from hub.domain.models import Activity
from hub.errors import InvalidRequest
from hub.ops import feedpage
from hub.ops.rebuild import ensure_built, rebuild
from hub.storage.changes import publish_counts
from hub.storage.feedcache import SENTINEL, GroupSummary
from hub.storage.marks import is_marked

MAX_GROUP_ACTIVITIES = 15
MAX_GROUP_ACTORS = 5
_GROUP_CURSOR = re.compile(r"^[0-9A-Z]{%d}\|[0-9a-f]{1,64}$" % ID_LENGTH)


@dataclass(frozen=True)
class Page:
    """A page; ``entries`` are the results as compact JSON texts (activity bodies as stored)."""

    entries: list[str]
    next: str | None
    unseen: int
    unread: int

    @property
    def results(self) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.entries]

    def to_json(self) -> dict[str, Any]:
        return {"results": self.results, "next": self.next, "unseen": self.unseen, "unread": self.unread}

    def to_bytes(self) -> bytes:
        """The JSON answer, spliced from the stored texts without parsing them."""
        return (f'{{"results":[{",".join(self.entries)}],"next":{json.dumps(self.next)},'
                f'"unseen":{self.unseen},"unread":{self.unread}}}').encode()


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def check_cursor(group: FeedGroup, cursor: str | None) -> str | None:
    if cursor is None or cursor == "":
        return None
    ok = _GROUP_CURSOR.match(cursor) if group.is_aggregated else is_valid_id(cursor)
    if not ok:
        raise InvalidRequest("id_lt is not a cursor this feed gave out (use its next)", field="id_lt")
    return cursor


async def read_feed(hub: Hub, app: str, group: FeedGroup, user: str, limit: int, cursor: str | None) -> Page:
    """One page with its counts.

    A hot read is one Redis round trip: one script (``FeedCache.read``) checks the feed is
    built, records the user as active, and returns the page's ids or group states with
    their stored bodies, the marks, both counts and the celebrities. Whatever is missing
    (feed not built, marks or celebrities not loaded) is loaded the usual way and the
    script asked again. The answer is spliced from the stored body texts. An aggregated
    feed's first page comes rendered from the page cache when no change happened since it
    was rendered (hub/storage/feedcache.py), else it is rendered and stored.
    """
    cursor = check_cursor(group, cursor)
    if group.is_ranked:
        # Imported here: the ranked reader builds on this module's parts.
        from hub.ops.ranked import read_ranked

        return await read_ranked(hub, app, group, user, limit, cursor)
    feed = f"{group.name}:{user}"
    pulls = group.follows == "user"
    body_prefix = hub.activities.keys(app).activity("")
    token = f"{_TOKEN}{next(_tokens)}" if group.is_aggregated and cursor is None else ""
    for _ in range(4):
        r = await hub.feeds.read(app, group, feed, user, limit + 1, cursor, limit, body_prefix, MAX_GROUP_ACTIVITIES,
                                 pulls, page_token=token)
        if r.missing == "feed":  # load the marks meanwhile: the next ask would miss them too
            await asyncio.gather(rebuild(hub, app, group, user), hub.marks.load(app, feed))
        elif r.missing == "marks":
            await hub.marks.load(app, feed)
        elif r.missing == "celebrities":
            await hub.follows.celebrities(app)  # loads the set
        else:
            break
    else:  # the caches keep disappearing under us: read step by step
        return await _read_feed_steps(hub, app, group, user, limit, cursor)
    if group.is_aggregated:
        marks = dict(r.marks)
        marks.pop("!", None)
        if r.page is not None:
            results, nxt = feedpage.from_text(group, r.page, marks)
        else:
            results, nxt = await _summaries_page(hub, app, group, feed, r.groups, marks, limit, r.bodies, token)
    else:
        ids = r.ids
        if len(r.celebrities - {SENTINEL}) > 0:
            ids = sorted(set(ids) | set(await celebrity_ids(hub, app, user, limit + 1, cursor)), reverse=True)
        results, nxt = await flat_bodies(hub, app, ids, limit, r.bodies)
    return Page(results, nxt, r.unseen, r.unread)


async def _read_feed_steps(hub: Hub, app: str, group: FeedGroup, user: str, limit: int, cursor: str | None) -> Page:
    feed = f"{group.name}:{user}"
    await ensure_built(hub, app, group, user)
    await hub.follows.touch_active(app, user, time.time())
    if group.is_aggregated:
        groups = await hub.feeds.page_groups(app, feed, limit + 1, cursor, MAX_GROUP_ACTIVITIES, MAX_GROUP_ACTORS)
        marks = await hub.marks.load(app, feed)
        results, nxt = await _summaries_page(hub, app, group, feed, groups, marks, limit, {}, "")
    else:
        results, nxt = await _flat_page(hub, app, group, user, limit, cursor)
    counts = await feed_counts(hub, app, group, feed)
    return Page(results, nxt, counts["unseen"], counts["unread"])


async def _bodies(hub: Hub, app: str, ids: Sequence[str], cached: dict[str, str] | None = None) -> dict[str, str]:
    """Bodies as stored (compact JSON text), from Redis (or ``cached``, what a page script
    already read), then Cassandra; deleted ones left out."""
    found = {i: cached[i] for i in ids if i in cached} if cached is not None else {}
    ask = [i for i in ids if i not in found]
    if ask:
        k = hub.activities.keys(app)
        raws = await hub.redis.mget([k.activity(i) for i in ask])
        found.update((i, raw) for i, raw in zip(ask, raws) if raw is not None)
    if len(found) < len(ids):
        missing = [i for i in ids if i not in found]
        for i, a in (await hub.activities.get_many(app, missing)).items():
            found[i] = _compact(a.to_json())
    return found


async def flat_bodies(
    hub: Hub, app: str, ids: list[str], limit: int, cached: dict[str, str] | None = None
) -> tuple[list[str], str | None]:
    page, more = ids[:limit], len(ids) > limit
    bodies = await _bodies(hub, app, page, cached)
    return [bodies[i] for i in page if i in bodies], (page[-1] if more and page else None)


async def _flat_page(
    hub: Hub, app: str, group: FeedGroup, user: str, limit: int, cursor: str | None
) -> tuple[list[str], str | None]:
    ids = await hub.feeds.flat_ids(app, f"{group.name}:{user}", limit + 1, cursor)
    if group.follows == "user":
        ids = sorted(set(ids) | set(await celebrity_ids(hub, app, user, limit + 1, cursor)), reverse=True)
    return await flat_bodies(hub, app, ids, limit)


async def celebrity_ids(hub: Hub, app: str, user: str, limit: int, cursor: str | None) -> list[str]:
    """Activities of followed celebrities, pulled as fan-out would have pushed them."""
    celebrities = await hub.follows.celebrities(app)
    if not celebrities:
        return []
    user_group = hub.settings.feeds["user"]
    found: list[str] = []
    for f in await hub.follows.following(app, user):
        if f.followee not in celebrities:
            continue
        await ensure_built(hub, app, user_group, f.followee)
        ids = await hub.feeds.flat_ids(app, f"user:{f.followee}", limit, cursor)
        copied: set[str] = set()
        if f.since and f.copy:
            copied = set(await hub.feeds.flat_ids(app, f"user:{f.followee}", f.copy, _after(f.since)))
        found += [i for i in ids if f.since is None or i > f.since or i in copied]
    return found


def _after(activity_id: str) -> str:
    # flat_ids takes an exclusive upper bound; this one admits ``activity_id`` itself.
    return activity_id + "~"


async def _summaries_page(
    hub: Hub, app: str, group: FeedGroup, feed: str, groups: list[GroupSummary], marks: dict[str, str], limit: int,
    cached: dict[str, str], token: str,
) -> tuple[list[str], str | None]:
    """A page of group entries (:func:`group_entry_json`'s, written straight to JSON text)
    from the groups' summaries: the per-member work was done inside Redis. A first page
    (``token``) whose bodies were all cached is kept in the page cache."""
    page, more = groups[:limit], len(groups) > limit
    ids = [i for g in page for i in g.newest]
    bodies, complete = cached, all(i in cached for i in ids)
    if not complete:  # hot reads have every body already
        bodies = await _bodies(hub, app, ids, cached)
    rows = feedpage.heads(page, bodies)
    nxt = page[-1].cursor if more and page else None
    if token and complete:
        # Only then: the read script checks that the bodies a page holds are still cached.
        text = feedpage.page_text(limit, nxt, ids, rows)
        if text is not None:
            hub.feeds.keep_page(app, feed, token, text)
    return feedpage.with_marks(group, rows, marks), nxt


# Page cache reservations (hub/storage/feedcache.py): unique per read across processes.
_TOKEN = f"{os.getpid():x}.{secrets.token_hex(4)}."
_tokens = itertools.count()


def group_entry(st: GroupSummary, activities: Sequence[Activity], marks: dict[str, str],
                notification: bool) -> dict[str, Any]:
    return group_entry_json(st, [a.to_json() for a in activities], marks, notification)


def group_entry_json(
    st: GroupSummary, activities: Sequence[dict[str, Any]], marks: dict[str, str], notification: bool
) -> dict[str, Any]:
    """The entry of a group (docs/api.md, Entries) from its summary and its newest
    activities as JSON (newest first); :mod:`hub.ops.feedpage` writes the same as text."""
    entry: dict[str, Any] = {
        "id": st.id, "group": st.key,
        "verb": activities[0]["verb"] if activities else st.key.split(":", 1)[0],
        "activities": list(activities),
        "activity_count": st.activity_count, "actor_count": st.actor_count, "actors": list(st.actors),
        "created_at": st.created_at,
        # Times are written in one fixed-width form (format_time), so the text max is the time max.
        "updated_at": max(a["time"] for a in activities) if activities else st.created_at,
        "is_seen": is_marked(marks, "seen", st.id, st.newest_id),
    }
    if notification:
        entry["is_read"] = is_marked(marks, "read", st.id, st.newest_id)
    return entry


async def feed_counts(hub: Hub, app: str, group: FeedGroup, feed: str) -> dict[str, int]:
    k = hub.feeds.keys(app)
    if group.is_aggregated:
        return await hub.marks.counts(app, feed, k.agg(feed), k.agg_state(feed))
    return await hub.marks.counts(app, feed, k.feed(feed), None)


async def mark(
    hub: Hub, app: str, group: FeedGroup, user: str, kind: str, ids: Sequence[str] | None
) -> dict[str, int]:
    """Mark entries (or all, with ``ids`` None) seen or read; read implies seen."""
    feed = f"{group.name}:{user}"
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
        marks = await _entry_marks(hub, app, group, feed, ids)
        for k in kinds:
            await hub.marks.mark(app, feed, k, marks)
    counts = await feed_counts(hub, app, group, feed)
    await publish_counts(hub.redis, hub.feeds.prefix, app, feed, counts)  # to every open socket of the user
    return counts


async def _entry_marks(hub: Hub, app: str, group: FeedGroup, feed: str, ids: Sequence[str]) -> dict[str, str]:
    """``entry -> newest id`` for the ids that are in the feed; others are ignored."""
    k = hub.feeds.keys(app)
    if group.is_aggregated:
        raws = await hub.redis.hmget(k.agg_state(feed), list(ids))
        return {gid: json.loads(raw)["n"] for gid, raw in zip(ids, raws) if raw}
    scores = await hub.redis.zmscore(k.feed(feed), list(ids))
    return {i: i for i, s in zip(ids, scores) if s is not None}
