"""Websocket entry frames spliced from entry text are the bytes the parsed entries gave.

realtime/frames.py writes an ``entry`` frame by splicing the entry's JSON text (as
hub/ops/feedpage.py renders it from stored bodies) instead of parsing the entry back and
serialising the frame again; these compare the two ways, byte for byte, over bodies with
non-ASCII text, astral characters, escapes, control characters and lone surrogates.
"""

from __future__ import annotations

import json
import random

from hub.storage.bodytexts import compact
from realtime.conn import dumps
from realtime.frames import FramePieces, entry_frame, frame_body

ODD = ["caf\u00e9", "\u2603", "\U0001f600", "a\\u0041", "\\", '"', "\n\t\x01\x1f", "\x7f", "\ud800", "\udc00x",
       "\\\\u00e9", "\u0000", "plain", "\u00e9\U0001f600\\"]


def _stored(obj: object) -> str:
    """How activity bodies are stored (hub/storage/activities.py): ensure_ascii."""
    return json.dumps(obj, separators=(",", ":"))


def _bodies(n: int) -> list[dict[str, object]]:
    rnd = random.Random(18)
    out = []
    for i in range(n):
        words = [rnd.choice(ODD) for _ in range(rnd.randint(0, 4))]
        out.append({"id": f"id{i}", "actor": rnd.choice(ODD), "verb": "like", "object": "o", "target": None,
                    "time": "2026-12-04T10:00:00.000000Z", "extra": {"text": "".join(words), "n": i,
                                                                      "f": 1.5, "l": words}})
    return out


def test_frame_body_is_the_frame_form_of_a_stored_body() -> None:
    for body in _bodies(500):
        assert frame_body(_stored(body)) == compact(json.loads(_stored(body)))
    assert frame_body('{"a":"x"}') == '{"a":"x"}'


def test_entry_frames_are_the_bytes_of_the_parsed_entries() -> None:
    bodies = _bodies(300)
    for start in range(0, 300, 15):
        texts = [frame_body(_stored(b)) for b in bodies[start : start + 15]]
        entry_text = '{"id":"g1","group":"like:2026-12-04","activities":[' + ",".join(texts) + '],"is_seen":false}'
        for feed, cursor, counts in [("timeline_aggregated:u\u00e9", "1733300000000-3", {"unseen": 3, "unread": 0}),
                                     ("notification:\ud800", None, {"unseen": 0, "unread": 7})]:
            old = dumps({"op": "entry", "feed": feed, "entry": json.loads(entry_text), "cursor": cursor, **counts})
            assert entry_frame(feed, entry_text, cursor, counts) == old
            pieces = FramePieces(feed, counts)
            assert pieces.frame(entry_text, cursor) == old
            assert pieces.frame(entry_text, "1-1") == dumps({"op": "entry", "feed": feed,
                                                             "entry": json.loads(entry_text), "cursor": "1-1",
                                                             **counts})
