from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from hub.domain.aggregation import (
    MAX_ACTIVITIES,
    Group,
    aggregate,
    group_from_state,
    group_id,
    group_key,
    group_to_state,
    merge,
    remove,
    to_entry,
)
from hub.domain.models import Activity

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
_seq = iter(range(1, 10**9))


def act(actor: str = "alice", verb: str = "like", obj: str = "photo:42", *, at: datetime | None = None,
        target: str | None = None, n: int | None = None) -> Activity:
    # Ids sort like the hub's: a later activity has a larger id.
    n = next(_seq) if n is None else n
    return Activity(id=f"{n:012d}", actor=actor, verb=verb, object=obj,
                    time=at or T0 + timedelta(seconds=n), target=target)


def only(groups: list[Group]) -> Group:
    assert len(groups) == 1
    return groups[0]


def summary(groups: list[Group]) -> list[tuple]:
    return [(g.key, g.id, g.verb, g.activity_count, g.actor_count, g.actors, dict(g.actor_counts),
             [a.id for a in g.activities], dict(g.members), g.created_at, g.updated_at, g.newest_id)
            for g in groups]


# group_key / group_id

def test_day_boundary_splits_with_day_field_and_not_without() -> None:
    late = act(at=datetime(2026, 11, 21, 23, 59, tzinfo=timezone.utc))
    early = act(at=datetime(2026, 11, 22, 0, 1, tzinfo=timezone.utc))
    by_day = aggregate([late, early], "{verb}:{object}:{day}")
    assert [g.key for g in by_day] == ["like:photo:42:2026-11-22", "like:photo:42:2026-11-21"]
    assert only(aggregate([late, early], "{verb}:{object}")).activity_count == 2


def test_day_uses_utc() -> None:
    a = act(at=datetime(2026, 11, 22, 1, 0, tzinfo=timezone(timedelta(hours=3))))
    assert group_key("{day}", a) == "2026-11-21"


def test_hour_and_all_fields() -> None:
    a = act("bob", "comment", "post:1", at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), target="album:7")
    assert group_key("{verb}|{actor}|{object}|{target}|{day}|{hour}", a) == (
        "comment|bob|post:1|album:7|2026-01-02|2026-01-02T03")
    same_hour = act(at=datetime(2026, 1, 2, 3, 59, tzinfo=timezone.utc))
    next_hour = act(at=datetime(2026, 1, 2, 4, 0, tzinfo=timezone.utc))
    assert len(aggregate([same_hour, next_hour], "{verb}:{hour}")) == 2
    assert len(aggregate([same_hour, act(at=datetime(2026, 1, 2, 3, 1, tzinfo=timezone.utc))], "{verb}:{hour}")) == 1


def test_target_none_is_empty() -> None:
    assert group_key("{verb}:{target}:x", act(target=None)) == "like::x"


def test_braces_in_user_data_are_copied_not_expanded() -> None:
    a = act(actor="{day}", obj="{0} {verb} {__class__} {", at=datetime(2026, 3, 4, tzinfo=timezone.utc))
    assert group_key("{actor}/{object}/{day}", a) == "{day}/{0} {verb} {__class__} {/2026-03-04"
    g = only(aggregate([a], "{actor}/{object}"))
    assert g.key == "{day}/{0} {verb} {__class__} {"


def test_group_id_is_stable_short_and_distinct() -> None:
    assert group_id("like:photo:42:2026-11-21") == group_id("like:photo:42:2026-11-21")
    assert len(group_id("x")) == 20 and int(group_id("x"), 16) >= 0
    assert group_id("a") != group_id("b")
    # Pinned: ids are stored and must not change between releases or processes.
    assert group_id("like:photo:42:2026-11-21") == "b39d85994f1e08404bb1"


# aggregate

def test_same_actor_twice_counts_once() -> None:
    g = only(aggregate([act("alice"), act("alice")], "{verb}:{object}"))
    assert (g.activity_count, g.actor_count, g.actors) == (2, 1, ("alice",))


def test_more_than_fifteen_keeps_newest_with_exact_count() -> None:
    acts = [act(f"u{i % 7}") for i in range(40)]
    g = only(aggregate(acts, "{verb}"))
    assert g.activity_count == 40
    assert [a.id for a in g.activities] == [a.id for a in reversed(acts)][:MAX_ACTIVITIES]
    assert g.actor_count == 7
    assert g.actors == ("u4", "u3", "u2", "u1", "u0")  # the last five distinct, newest first
    assert g.newest_id == acts[-1].id
    assert g.created_at == acts[0].time and g.updated_at == acts[-1].time


def test_aggregate_is_order_independent_and_dedupes() -> None:
    acts = [act(f"u{i % 4}", ("like", "comment")[i % 5 % 2], f"p{i % 3}") for i in range(60)]
    expected = summary(aggregate(acts, "{verb}:{object}"))
    rng = random.Random(7)
    for _ in range(5):
        shuffled = acts + rng.sample(acts, 10)
        rng.shuffle(shuffled)
        assert summary(aggregate(shuffled, "{verb}:{object}")) == expected
    assert sum(g[3] for g in expected) == 60


def test_groups_ordered_newest_first() -> None:
    a, b, c = act(obj="x"), act(obj="y"), act(obj="x")
    assert [g.key for g in aggregate([a, b, c], "{object}")] == ["x", "y"]


def test_to_entry_matches_contract() -> None:
    g = only(aggregate([act("alice"), act("bob")], "{verb}:{object}:{day}"))
    e = to_entry(g, is_seen=False, is_read=True)
    assert set(e) == {"id", "group", "verb", "activities", "activity_count", "actor_count", "actors",
                      "created_at", "updated_at", "is_seen", "is_read"}
    assert e["group"] == "like:photo:42:2026-11-21" and e["id"] == group_id(e["group"])
    assert e["actors"] == ["bob", "alice"] and e["activity_count"] == 2 and e["actor_count"] == 2
    assert e["activities"][0] == g.activities[0].to_json() and e["verb"] == "like"
    assert e["created_at"].endswith("Z") and e["is_read"] is True
    assert "is_read" not in g.to_entry(is_seen=True)
    json.dumps(e)


# merge

def test_merge_is_idempotent() -> None:
    a = act()
    first = merge([], [a], "{verb}", 10)
    again = merge(first.groups, [a], "{verb}", 10)
    assert again.groups == first.groups and (again.new, again.changed, again.deleted) == ([], [], [])
    assert only(merge([], [a, a], "{verb}", 10).groups).activity_count == 1


def test_duplicate_beyond_retained_window_is_not_counted_again() -> None:
    acts = [act() for _ in range(20)]
    groups = aggregate(acts, "{verb}")
    res = merge(groups, [acts[0]], "{verb}", 10)  # acts[0] is no longer retained
    assert res.changed == [] and only(res.groups).activity_count == 20


def test_merge_new_group_and_reopen_moves_to_top() -> None:
    old = act(obj="x")
    mid = act(obj="y")
    groups = merge([], [old, mid], "{object}", 10).groups
    assert [g.key for g in groups] == ["y", "x"]
    res = merge(groups, [act("bob", obj="x")], "{object}", 10)
    assert [g.key for g in res.groups] == ["x", "y"]
    assert [g.key for g in res.changed] == ["x"] and res.new == [] and res.deleted == []
    x = res.groups[0]
    assert x.activity_count == 2 and x.actors == ("bob", "alice") and x.id == groups[1].id
    res2 = merge(res.groups, [act(obj="z")], "{object}", 10)
    assert [g.key for g in res2.new] == ["z"] and res2.changed == []
    assert [g.key for g in res2.groups] == ["z", "x", "y"]


def test_late_activity_keeps_group_position_and_ranks_actors() -> None:
    early_bob = act("bob", obj="x", n=5)
    groups = aggregate([act("alice", obj="x", n=10), act("carol", obj="y", n=20)], "{object}")
    res = merge(groups, [early_bob], "{object}", 10)
    assert [g.key for g in res.groups] == ["y", "x"]
    x = res.groups[1]
    assert x.actors == ("alice", "bob") and x.activity_count == 2 and x.newest_id == f"{10:012d}"
    assert x.created_at == early_bob.time
    # carol's late, older activity does not push alice (newer) down
    res = merge(res.groups, [act("carol", obj="x", n=7)], "{object}", 10)
    assert res.groups[1].actors == ("alice", "carol", "bob")


def test_max_length_trims_into_deleted() -> None:
    groups = aggregate([act(obj=f"o{i}") for i in range(3)], "{object}")
    assert [g.key for g in groups] == ["o2", "o1", "o0"]
    res = merge(groups, [act(obj="o3"), act(obj="o4")], "{object}", 3)
    assert [g.key for g in res.groups] == ["o4", "o3", "o2"]
    assert [g.key for g in res.new] == ["o4", "o3"]
    assert res.deleted == [groups[1], groups[2]]


def test_new_group_trimmed_at_once_is_neither_new_nor_deleted() -> None:
    groups = aggregate([act(obj="a", n=100), act(obj="b", n=200)], "{object}")
    res = merge(groups, [act(obj="old", n=1)], "{object}", 2)
    assert res.groups == groups and res.new == [] and res.deleted == [] and res.changed == []


def test_changed_group_trimmed_is_deleted_in_its_stored_form() -> None:
    groups = aggregate([act(obj="a", n=10), act(obj="b", n=20), act(obj="c", n=30)], "{object}")
    res = merge(groups, [act(obj="a", n=5), act(obj="d", n=40)], "{object}", 3)
    assert [g.key for g in res.groups] == ["d", "c", "b"]
    assert res.changed == [] and res.deleted == [groups[2]]


def test_merge_many_groups_at_once_sorts_correctly() -> None:
    base = aggregate([act(obj=f"o{i}") for i in range(50)], "{object}")
    incoming = [act(obj=f"o{i}") for i in range(0, 100, 2)]
    res = merge(base, incoming, "{object}", 1000)
    ids = [g.newest_id for g in res.groups]
    assert ids == sorted(ids, reverse=True) and len(res.groups) == 75
    assert len(res.new) == 25 and len(res.changed) == 25


@pytest.mark.parametrize("template", ["{verb}:{object}", "{verb}:{day}", "{actor}", "{verb}:{object}:{hour}"])
def test_merging_one_at_a_time_equals_aggregate(template: str) -> None:
    rng = random.Random(template)
    acts = [act(f"u{rng.randrange(8)}", rng.choice(["like", "follow"]), f"p{rng.randrange(4)}",
                at=T0 + timedelta(minutes=rng.randrange(3000))) for _ in range(200)]
    groups: list[Group] = []
    order = acts[:]
    rng.shuffle(order)  # arrivals out of order, as with concurrent fan-out and follow copies
    for a in order + acts[:30]:  # and some retries
        groups = merge(groups, [a], template, 10_000).groups
    assert summary(groups) == summary(aggregate(acts, template))


# remove

def test_remove_updates_counts_and_deletes_empty_groups() -> None:
    a1, b1, a2 = act("alice", obj="x"), act("bob", obj="x"), act("alice", obj="x")
    lone = act("carol", obj="y")
    groups = aggregate([a1, b1, a2, lone], "{object}")
    res = remove(groups, [a2.id])
    x = only(res.changed)
    assert (x.activity_count, x.actor_count, x.actors) == (2, 2, ("bob", "alice"))
    assert [a.id for a in x.activities] == [b1.id, a1.id] and x.newest_id == b1.id
    res = remove(res.groups, [b1.id])
    x = only(res.changed)
    assert (x.activity_count, x.actor_count, x.actors) == (1, 1, ("alice",))
    assert [g.key for g in res.groups] == ["y", "x"]  # x's newest is now older than y
    res = remove(res.groups, [a1.id, lone.id, "nope"])
    assert res.groups == [] and {g.key for g in res.deleted} == {"x", "y"} and res.changed == []


def test_remove_unknown_id_changes_nothing() -> None:
    groups = aggregate([act()], "{verb}")
    res = remove(groups, ["missing"])
    assert res.groups == groups and (res.new, res.changed, res.deleted) == ([], [], [])


def test_remove_activity_beyond_retained_keeps_counts_exact() -> None:
    acts = [act("dave" if i == 0 else f"u{i % 3}") for i in range(40)] + [act("dave")]
    g = only(aggregate(acts, "{verb}"))
    assert g.actor_count == 4 and g.activity_count == 41
    g = only(remove([g], [acts[0].id]).groups)  # dave's old one, long dropped from activities
    assert g.activity_count == 40 and g.actor_count == 4 and g.actors[0] == "dave"
    g = only(remove([g], [acts[-1].id]).groups)
    assert g.activity_count == 39 and g.actor_count == 3 and "dave" not in g.actors
    assert g.actor_counts == {"u0": 13, "u1": 13, "u2": 13}
    assert len(g.activities) == MAX_ACTIVITIES - 1  # dropped ones do not come back


def test_remove_then_merge_equals_aggregate_of_rest() -> None:
    acts = [act(f"u{i % 3}", obj=f"p{i % 2}") for i in range(10)]
    groups = remove(aggregate(acts, "{object}"), [acts[9].id, acts[4].id]).groups
    rest = [a for a in acts if a.id not in (acts[9].id, acts[4].id)]
    assert summary(groups) == summary(aggregate(rest, "{object}"))


def test_state_round_trip() -> None:
    acts = [act(f"u{i % 6}") for i in range(30)]
    g = only(remove(aggregate(acts, "{verb}:{day}"), [acts[3].id]).groups)
    back = group_from_state(json.loads(json.dumps(group_to_state(g))))
    assert back == g
