"""VerbTimes: the Hub's bounded memo of a stored body's verb and time (hub/ops/feedpage.py)."""

from __future__ import annotations

import json

from hub.ops.feedpage import VerbTimes


def body(i: int) -> str:
    return json.dumps({"id": str(i), "verb": "like", "time": f"2026-12-04T14:00:{i % 60:02d}"})


def test_parses_once_and_stays_bounded() -> None:
    vt = VerbTimes(max_size=3)
    first = vt(body(1))
    assert first == {"verb": "like", "time": "2026-12-04T14:00:01"}
    assert vt(body(1)) is first  # known text: not parsed again
    for i in range(10):
        vt(body(i))
    assert len(vt._known) <= 3


def test_instances_share_nothing() -> None:
    a, b = VerbTimes(), VerbTimes()
    a(body(1))
    assert not b._known
