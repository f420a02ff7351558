"""hub/storage/failover.py: which slot ranges count as moved after a failover."""

from __future__ import annotations

from hub.storage.failover import moved

BEFORE = {"0-5460": "a:1", "5461-10922": "b:2", "10923-16383": "c:3"}


def test_nothing_moved() -> None:
    assert moved(BEFORE, dict(BEFORE)) == []


def test_a_promoted_replica_moves_its_range() -> None:
    now = {**BEFORE, "5461-10922": "e:5"}
    assert moved(BEFORE, now) == [(5461, 10922, "e:5")]


def test_a_split_or_merged_range_with_the_same_owner_is_no_change() -> None:
    now = {"0-100": "a:1", "101-5460": "a:1", "5461-16383": "b:2"}
    assert moved(BEFORE, now) == [(10923, 16383, "b:2")]  # only c's slots changed owner


def test_slots_unserved_at_the_last_check_count_as_moved() -> None:
    before = {"0-5460": "a:1", "10923-16383": "c:3"}  # b's slots were failing over
    assert moved(before, {**before, "5461-10922": "e:5"}) == [(5461, 10922, "e:5")]
