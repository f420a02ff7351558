"""What every feed reader shares: the page request, the page, the interface, the counts.

A feed kind has one reader (flat and aggregated: hub/ops/readers.py, ranked:
hub/ops/ranked.py), each a :class:`FeedReader`; hub/ops/reads.py picks one per group.
Pages are cut by cursor (``id_lt``): a flat feed's cursor is the last activity id, an
aggregated feed's the last group's ``<newest id>|<group id>``, a ranked feed's the last
id of a page. New entries always sort above the cursor, so paging never repeats or
skips an entry while new ones arrive.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hub.config import FeedGroup
from hub.core import Hub
from hub.ops.rebuild import ensure_built
from hub.storage.bodytexts import body_texts


@dataclass(frozen=True)
class PageRequest:
    """One page of ``user``'s feed of ``group``: ``limit`` entries below ``cursor`` (a
    checked cursor, or None for the first page)."""

    app: str
    group: FeedGroup
    user: str
    limit: int
    cursor: str | None

    @property
    def feed(self) -> str:
        return self.group.feed_of(self.user)


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


class FeedReader(Protocol):
    """Reads one kind of feed. A read rebuilds the feed first when it is not cached and
    records the user as active; the page and its counts agree."""

    async def read(self, hub: Hub, req: PageRequest) -> Page: ...


async def feed_counts(hub: Hub, app: str, group: FeedGroup, feed: str) -> dict[str, int]:
    return await hub.marks.counts(app, group, feed)


async def flat_bodies(
    hub: Hub, app: str, ids: list[str], limit: int, cached: dict[str, str] | None = None
) -> tuple[list[str], str | None]:
    """The first ``limit`` ids' bodies (deleted ones left out) and the next cursor."""
    page, more = ids[:limit], len(ids) > limit
    bodies = await body_texts(hub.activities, app, page, cached)
    return [bodies[i] for i in page if i in bodies], (page[-1] if more and page else None)


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
        feed = user_group.feed_of(f.followee)
        ids = await hub.feeds.flat_ids(app, feed, limit, cursor)
        copied: set[str] = set()
        if f.since and f.copy:
            copied = set(await hub.feeds.flat_ids(app, feed, f.copy, _after(f.since)))
        found += [i for i in ids if f.since is None or i > f.since or i in copied]
    return found


def _after(activity_id: str) -> str:
    # flat_ids takes an exclusive upper bound; this one admits ``activity_id`` itself.
    return activity_id + "~"


def merge_ids(ids: Sequence[str], pulled: Sequence[str]) -> list[str]:
    """A feed's ids with pulled ones merged in, newest first, each once."""
    return sorted(set(ids) | set(pulled), reverse=True)
