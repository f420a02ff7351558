"""The one renderer of an aggregated feed's group entries, and the page cache's text.

An entry (docs/api.md, Entries) is written as JSON text straight from a group's summary
(:class:`hub.storage.groupreads.GroupSummary`, the one parse of the scripts' answer) and
its newest bodies as stored, in two parts: everything up to ``"is_seen":`` (a function of
the group and its bodies: what the page cache keeps), then the marks, applied at every
read. Pages (fresh or cached) and websocket frames (:func:`entry_texts`) all go through
:func:`heads` and :func:`with_marks`, so they give the same entries.

The cached text (``hub.storage.feedcache``, page cache) is one header line
``<entries>\\t<next>\\t<body ids, comma separated>`` and one line per entry,
``<group id>\\t<newest id>\\t<entry up to is_seen>``. JSON text never holds a raw newline
(``json.dumps`` escapes control characters), so lines and the first two tabs of an entry
line are unambiguous.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from hub.config import FeedGroup
from hub.storage.groupreads import GroupSummary

_str = json.encoder.encode_basestring  # what json.dumps(..., ensure_ascii=False) writes for a str

# (group id, newest id, entry text up to and including '"is_seen":')
Head = tuple[str, str, str]


def _jstr(v: Any) -> str:
    return _str(v) if type(v) is str else json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def heads(page: list[GroupSummary], bodies: dict[str, str], verb_times: VerbTimes | None = None) -> list[Head]:
    """Each group's entry up to ``is_seen``; ``verb_times`` (the Hub's) spares parsing known bodies."""
    verb_time = VerbTimes() if verb_times is None else verb_times
    out = []
    for g in page:
        texts = [bodies[i] for i in g.newest if i in bodies]
        if texts:
            vts = [verb_time(t) for t in texts]
            verb, updated = vts[0]["verb"], max(v["time"] for v in vts)
        else:
            verb, updated = g.key.split(":", 1)[0], g.created_at
        text = (f'{{"id":{_str(g.id)},"group":{_str(g.key)},"verb":{_jstr(verb)},"activities":[{",".join(texts)}],'
                f'"activity_count":{g.activity_count},"actor_count":{g.actor_count},'
                f'"actors":[{",".join(map(_jstr, g.actors))}],"created_at":{_jstr(g.created_at)},'
                f'"updated_at":{_jstr(updated)},"is_seen":')
        out.append((g.id, g.newest_id, text))
    return out


def with_marks(group: FeedGroup, rows: Iterable[Head], marks: dict[str, str]) -> list[str]:
    """The entries: each head with is_seen (and is_read for notification feeds)."""
    seen_w, read_w = marks.get("seen:*", ""), marks.get("read:*", "")
    out = []
    if group.kind == "notification":
        for gid, n, head in rows:
            seen = n <= seen_w or marks.get("seen:" + gid, "") >= n
            read = n <= read_w or marks.get("read:" + gid, "") >= n
            out.append(head + ("true" if seen else "false") + (',"is_read":true}' if read else ',"is_read":false}'))
    else:
        for gid, n, head in rows:
            seen = n <= seen_w or marks.get("seen:" + gid, "") >= n
            out.append(head + ("true}" if seen else "false}"))
    return out


def entry_texts(group: FeedGroup, summaries: list[GroupSummary], bodies: dict[str, str],
                marks: dict[str, str], verb_times: VerbTimes | None = None) -> dict[str, str]:
    """``group id -> entry`` as JSON text, rendered as a page is (websocket frames splice
    it into the frame without parsing it back; realtime/frames.py)."""
    rows = heads(summaries, bodies, verb_times)
    return {gid: text for (gid, _, _), text in zip(rows, with_marks(group, rows, marks))}


def page_text(entries: int, nxt: str | None, body_ids: Iterable[str], rows: list[Head]) -> str | None:
    """The text the page cache keeps, or None when it could not be read back exactly."""
    lines = [f"{entries}\t{nxt or ''}\t{','.join(body_ids)}", *("\t".join(r) for r in rows)]
    text = "\n".join(lines)
    return None if text.count("\n") != len(rows) else text


def from_text(group: FeedGroup, text: str, marks: dict[str, str]) -> tuple[list[str], str | None]:
    """A cached page's entries (with the current marks) and its next cursor."""
    head, *lines = text.split("\n")
    nxt = head.split("\t", 2)[1]
    rows = [line.split("\t", 2) for line in lines]
    return with_marks(group, rows, marks), nxt or None  # type: ignore[arg-type]


class VerbTimes:
    """Stored body text -> its verb and time, so that hot aggregated reads do not parse
    the same bodies again and again (rendering 25 groups of 15 bodies: 0.1 ms with it,
    0.8 ms without). Keyed by the text itself, so it cannot go stale; bounded (emptied
    when full). One per process, held by the Hub (``hub.verb_times``)."""

    def __init__(self, max_size: int = 20_000) -> None:
        self._max = max_size
        self._known: dict[str, dict[str, Any]] = {}

    def __call__(self, text: str) -> dict[str, Any]:
        found = self._known.get(text)
        if found is None:
            body = json.loads(text)
            found = {"verb": body["verb"], "time": body["time"]}
            if len(self._known) >= self._max:
                self._known.clear()
            self._known[text] = found
        return found
