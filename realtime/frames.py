"""What frames carry beyond the change message: current entries and counts of a feed.

A change message names ids only; the entry (flat: the activity, aggregated: its group as
the read API shows it, rendered by hub/ops/feedpage.py as pages are) and the feed's
counts are read from Redis when the frame is built.

``frame_parts`` is the dispatcher's path, for all the feeds of a pub/sub batch at once:
group summaries (counts, newest actors and ids, each O(log n) in Redis whatever the
group's size), marks and both counts of every feed in one pipelined round trip
(hub/storage/feedstate.py), then the bodies of every aggregated feed in one MGET per app,
instead of five dependent round trips per feed. Each round trip on a busy event loop
costs a scheduling delay, which is what 202-to-frame latency is made of, and the
gateway's CPU (with 200 sockets on busy feeds, most of a frame's cost was the Redis
client's, per command and per round trip).

Its entries are JSON *text*, exactly as ``json.dumps(entry, separators=(",", ":"),
ensure_ascii=False)`` writes the entry (realtime/conn.py ``dumps``), and
:func:`entry_frame` splices that text into the frame: no entry is parsed back and
serialised again, which was most of a frame's cost on a busy aggregated feed. Stored
bodies are written with ``ensure_ascii`` (non-ASCII as ``\\uXXXX``); such escapes are
written as the characters (:func:`frame_body`), so frames are the same bytes as when they
were built from parsed entries.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from hub.config import FeedGroup
from hub.core import Hub
from hub.domain.activity import split_feed_id
from hub.ops import feedpage
from hub.storage.bodytexts import body_texts, compact
from hub.storage.feedstate import FeedState, feed_states
from hub.storage.groupreads import GroupSummary
from realtime.conn import dumps

_str = json.encoder.encode_basestring  # json.dumps(s, ensure_ascii=False) for a str s

# A feed's part of a batch's frames: entry id -> entry JSON text, and its counts
Parts = tuple[dict[str, str], dict[str, int]]


# In a stored (ensure_ascii) text: a surrogate pair, one \\u escape, or any other escape
# (matched so that an escaped backslash before a "u" is never read as a \\u escape).
_ESCAPE = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\u([0-9a-f]{4})|\\[^u]")


def _plain(m: re.Match[str]) -> str:
    if m.group(1):
        return chr(0x10000 + ((int(m.group(1), 16) - 0xD800) << 10) + int(m.group(2), 16) - 0xDC00)
    if m.group(3):
        c = int(m.group(3), 16)
        return m.group(0) if c < 0x20 else chr(c)  # control characters stay escaped in both forms
    return m.group(0)


def frame_body(text: str) -> str:
    """A stored body text as ``dumps`` writes it inside a frame (``ensure_ascii=False``).

    Both forms escape ``"``, ``\\`` and control characters alike and differ only where
    the stored one has a ``\\u`` escape of another character: those are written as the
    characters (a surrogate pair as one), without parsing the body."""
    return text if "\\u" not in text else _ESCAPE.sub(_plain, text)


class FramePieces:
    """What every ``entry`` frame of one feed and batch shares: the text around the entry
    and the cursor (``dumps({"op": "entry", "feed": feed, "entry": .., "cursor": ..,
    **counts})`` with the entry's JSON text spliced in, byte for byte the same)."""

    __slots__ = ("head", "tail")

    def __init__(self, feed: str, counts: dict[str, int]) -> None:
        self.head = f'{{"op":"entry","feed":{compact(feed)},"entry":'
        self.tail = "".join(f",{compact(k)}:{compact(v)}" for k, v in counts.items()) + "}"

    def frame(self, entry: str, cursor: Any) -> bytes:
        c = _str(cursor) if type(cursor) is str else compact(cursor)
        text = f'{self.head}{entry},"cursor":{c}{self.tail}'
        try:
            return text.encode()
        except UnicodeEncodeError:  # a lone surrogate: dumps escapes the whole frame then
            return dumps(json.loads(text))


def entry_frame(feed: str, entry: str, cursor: Any, counts: dict[str, int]) -> bytes:
    """One ``entry`` frame (see :class:`FramePieces`)."""
    return FramePieces(feed, counts).frame(entry, cursor)


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
        return {gid: json.loads(t) for gid, t in (await self._groups(app, group, states, marks)).items()}

    async def _activities(self, app: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        bodies = await self.hub.activities.get_many(app, ids)
        return {i: bodies[i].to_json() for i in ids if i in bodies}

    async def _groups(self, app: str, group: FeedGroup, states: list[GroupSummary],
                      marks: dict[str, str]) -> dict[str, str]:
        if not states:
            return {}
        stored = await body_texts(self.hub.activities, app, [i for st in states for i in st.newest])
        bodies = {i: frame_body(t) for i, t in stored.items()}
        return feedpage.entry_texts(group, states, bodies, marks, self.hub.verb_times)

    async def frame_parts(self, asks: list[tuple[str, str, list[str]]]) -> list[Parts | BaseException]:
        """For each ``(app, feed, ids)``: ``(entries(ids) as JSON text, counts)``, or the
        error that kept that feed's frames from being built; every feed's summaries, marks
        and counts in one pipeline, then every aggregated feed's bodies in one MGET per
        app (see the module doc)."""
        plans = [(app, self.group(feed), feed, list(dict.fromkeys(ids))) for app, feed, ids in asks]
        try:
            states = await feed_states(self.hub.feeds, self.hub.marks, plans)
        except Exception as e:  # Redis down: no frame of this batch can be built
            return [e] * len(plans)
        wanted: dict[str, list[str]] = {}  # app -> body ids of its aggregated feeds' groups
        for (app, group, _, _), st in zip(plans, states):
            if group.is_aggregated and isinstance(st, FeedState):
                wanted.setdefault(app, []).extend(i for s in st.summaries for i in s.newest)
        apps = list(wanted)
        found = await asyncio.gather(*(body_texts(self.hub.activities, a, list(dict.fromkeys(wanted[a])))
                                       for a in apps), return_exceptions=True)
        bodies = dict(zip(apps, found))
        return list(await asyncio.gather(*(self._parts(plan, st, bodies.get(plan[0]))
                                           for plan, st in zip(plans, states)), return_exceptions=True))

    async def _parts(self, plan: tuple[str, FeedGroup, str, list[str]], state: FeedState | None | BaseException,
                     stored: dict[str, str] | BaseException | None) -> Parts:
        app, group, feed, ids = plan
        if isinstance(state, BaseException):
            raise state
        if state is None:
            # Marks not cached (the subscription loads them, so rare): the general path.
            entries, counts = await asyncio.gather(self.entries(app, feed, ids), self.counts(app, feed))
            return {i: compact(e) for i, e in entries.items()}, counts
        if not group.is_aggregated:
            return {i: compact(e) for i, e in (await self._activities(app, ids)).items()}, state.counts
        if isinstance(stored, BaseException):
            raise stored
        if not state.summaries:
            return {}, state.counts
        bodies = {i: frame_body(t) for s in state.summaries for i in s.newest if (t := (stored or {}).get(i))}
        return feedpage.entry_texts(group, state.summaries, bodies, state.marks, self.hub.verb_times), state.counts

    async def counts(self, app: str, feed: str) -> dict[str, int]:
        group = self.group(feed)
        return await self.hub.marks.counts(app, group, feed)
