"""Stored times: one fixed-width RFC 3339 form, read back exactly, whatever the year."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hub.domain.activity import parse_time
from hub.domain.models import format_time, parse_stored_time


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00Z", "0828-01-01T20:51:10Z", "0999-12-31T23:59:59.5Z",
                                  "2026-11-21T10:00:00Z", "9999-12-31T23:59:59.999999Z"])
def test_stored_time_round_trips_with_a_four_digit_year(text: str) -> None:
    t = parse_time(text, "time")
    stored = format_time(t)
    assert stored[:4] == text[:4] and len(stored) == 27
    assert parse_stored_time(stored) == t


def test_stored_times_sort_as_text_like_the_times() -> None:
    times = [datetime(y, 1, 1, tzinfo=timezone.utc) for y in (828, 1970, 2026)]
    assert sorted(format_time(t) for t in times) == [format_time(t) for t in times]
