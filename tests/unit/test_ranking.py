"""Weighted ranking: the score formula and the page rule used when merging pulls."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hub.domain.ranking import page_after, rank_score

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
W = (("likes", 1.0), ("reposts", 3.0))


def test_recency_alone_orders_by_time() -> None:
    assert rank_score(T0 + timedelta(seconds=1), {}, 24, W) > rank_score(T0, {}, 24, W)


def test_doubling_engagement_is_worth_one_half_life() -> None:
    old = rank_score(T0, {"likes": 3}, 24, W)  # 1 + 3 = 4
    new = rank_score(T0 + timedelta(hours=24), {"likes": 1}, 24, W)  # 1 + 1 = 2, one half-life later
    assert math.isclose(old, new, abs_tol=1e-9)


def test_weights_and_ignored_values() -> None:
    base = rank_score(T0, {}, 12, W)
    assert math.isclose(rank_score(T0, {"reposts": 1}, 12, W) - base, 2.0)  # log2(1 + 3)
    for junk in ({"likes": -5}, {"likes": "9"}, {"likes": True}, {"likes": float("nan")}, {"other": 100}):
        assert rank_score(T0, junk, 12, W) == base


def test_a_liked_older_activity_outranks_a_newer_one_within_its_gain() -> None:
    liked = rank_score(T0, {"likes": 15}, 1, W)  # log2(16) = 4 half-lives of 1 h
    assert liked > rank_score(T0 + timedelta(hours=3), {}, 1, W)
    assert liked < rank_score(T0 + timedelta(hours=5), {}, 1, W)


def test_page_after_orders_by_score_then_id_and_skips_up_to_the_cursor() -> None:
    entries = [(1.0, "a"), (3.0, "b"), (2.0, "c"), (2.0, "d"), (0.5, "e")]
    assert page_after(entries, None, 3) == ["b", "d", "c"]
    assert page_after(entries, (2.0, "d"), 2) == ["c", "a"]
    assert page_after(entries, (2.0, "c"), 10) == ["a", "e"]
    # Paging through with every cursor gives each entry once, in order.
    seen, cursor = [], None
    scores = {i: s for s, i in entries}
    while page := page_after(entries, cursor, 2):
        seen += page
        cursor = (scores[page[-1]], page[-1])
    assert seen == ["b", "d", "c", "a", "e"]
