"""Aggregated and notification feeds as pure functions, in the style of Stream Framework.

A feed is a list of :class:`Group`, newest first by ``newest_id`` (activity ids sort by
time). :func:`aggregate` builds groups from scratch; :func:`merge` and :func:`remove` change
a feed and say what is new, changed and deleted, so callers write and push only that.

Counts are exact. A group keeps only the newest ``MAX_ACTIVITIES`` activities, but it also
keeps ``members`` (activity id -> actor) for every activity in it, because that is the least
that keeps ``activity_count``, ``actor_count`` and ``actors`` exact when an activity that is
no longer retained is removed, and keeps a late duplicate from being counted twice.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hub.domain.models import Activity, format_time, parse_stored_time

MAX_ACTIVITIES = 15
MAX_ACTORS = 5
# Past this many touched groups one sort is cheaper than one bisect insert per group.
_SORT_THRESHOLD = 32
_FIELD = re.compile(r"\{(verb|actor|object|target|day|hour)\}")


def _utc(t: datetime) -> datetime:
    # A naive time is taken as UTC, never as the server's local time.
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def group_key(template: str, activity: Activity) -> str:
    """Fill ``template`` (fields: verb, actor, object, target, day, hour) from ``activity``."""
    t = _utc(activity.time)
    values = {
        "verb": activity.verb, "actor": activity.actor, "object": activity.object,
        "target": activity.target or "", "day": t.strftime("%Y-%m-%d"), "hour": t.strftime("%Y-%m-%dT%H"),
    }
    # One regex pass: a value that itself reads "{day}" or "{0}" is copied, never expanded.
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def group_id(key: str) -> str:
    """A short id for a group key, the same in every process and after restarts."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


@dataclass(frozen=True, slots=True)
class Group:
    """One aggregated entry. Build with :func:`aggregate`, :func:`merge` or :func:`group_from_state`.

    ``activities`` are the newest retained (at most MAX_ACTIVITIES), newest first;
    ``members`` maps every activity id in the group to its actor and ``actor_counts`` each
    actor to its number of activities, so the counts stay exact. ``newest_id`` is the
    largest member id and orders the feed.
    """

    key: str
    id: str
    verb: str
    activities: tuple[Activity, ...]
    activity_count: int
    actors: tuple[str, ...]
    actor_count: int
    actor_counts: Mapping[str, int]
    members: Mapping[str, str]
    created_at: datetime
    updated_at: datetime
    newest_id: str

    def to_entry(self, is_seen: bool = False, is_read: bool | None = None) -> dict[str, Any]:
        return to_entry(self, is_seen, is_read)


def to_entry(group: Group, is_seen: bool = False, is_read: bool | None = None) -> dict[str, Any]:
    """The JSON entry of docs/api.md (Entries); ``is_read`` is left out when None (aggregated feeds)."""
    entry: dict[str, Any] = {
        "id": group.id, "group": group.key, "verb": group.verb,
        "activities": [a.to_json() for a in group.activities],
        "activity_count": group.activity_count, "actor_count": group.actor_count,
        "actors": list(group.actors),
        "created_at": format_time(group.created_at), "updated_at": format_time(group.updated_at),
        "is_seen": is_seen,
    }
    if is_read is not None:
        entry["is_read"] = is_read
    return entry


@dataclass(frozen=True, slots=True)
class MergeResult:
    groups: list[Group]  # the whole feed after the change, newest first
    new: list[Group]
    changed: list[Group]
    deleted: list[Group]  # as they were before the change, so callers can find what they stored


def _newest_actors(members: Mapping[str, str]) -> tuple[str, ...]:
    latest: dict[str, str] = {}
    for aid, actor in members.items():
        if aid > latest.get(actor, ""):
            latest[actor] = aid
    return tuple(heapq.nlargest(MAX_ACTORS, latest, key=latest.__getitem__))


def _build(key: str, members: dict[str, str], counts: dict[str, int], retained: Sequence[Activity],
           actors: tuple[str, ...], created_at: datetime, newest_id: str, old: Group | None) -> Group:
    return Group(
        key=key, id=old.id if old else group_id(key),
        # Without {verb} in the template a group mixes verbs; it shows its newest one.
        verb=retained[0].verb if retained else old.verb if old else "",
        activities=tuple(retained), activity_count=len(members), actors=actors,
        actor_count=len(counts), actor_counts=counts, members=members, created_at=created_at,
        updated_at=max(_utc(a.time) for a in retained) if retained else old.updated_at if old else created_at,
        newest_id=newest_id,
    )


def _add(key: str, old: Group | None, acts: Sequence[Activity]) -> Group | None:
    """``old`` (or a new group) with ``acts`` joined; None when every one is already in it."""
    fresh = sorted((a for a in acts if old is None or a.id not in old.members), key=lambda a: a.id)
    if not fresh:
        return None
    # Copied once per group and call, not per activity: the cost of exact counts.
    members = dict(old.members) if old else {}
    counts = dict(old.actor_counts) if old else {}
    for a in fresh:
        members[a.id] = a.actor
        counts[a.actor] = counts.get(a.actor, 0) + 1
    prev_newest = old.newest_id if old else ""
    retained = heapq.nlargest(MAX_ACTIVITIES, [*(old.activities if old else ()), *fresh], key=lambda a: a.id)
    if fresh[0].id > prev_newest:
        # Every newcomer is newer than the group: each one's actor simply goes to the front.
        actors = old.actors if old else ()
        for a in fresh:
            actors = (a.actor, *(x for x in actors if x != a.actor))[:MAX_ACTORS]
    else:
        # An older activity arrived late (a follow's copy, a retry): rank actors again.
        actors = _newest_actors(members)
    oldest = min(_utc(a.time) for a in fresh)
    created_at = min(old.created_at, oldest) if old else oldest
    return _build(key, members, counts, retained, actors, created_at, max(prev_newest, fresh[-1].id), old)


def _without(g: Group, gone: set[str]) -> Group | None:
    """``g`` with the activities in ``gone`` removed; None when nothing is left."""
    members = {aid: actor for aid, actor in g.members.items() if aid not in gone}
    if not members:
        return None
    counts = dict(g.actor_counts)
    for aid in gone:
        if aid in g.members:
            actor = g.members[aid]
            counts[actor] -= 1
            if not counts[actor]:
                del counts[actor]
    retained = [a for a in g.activities if a.id not in gone]
    # Older activities dropped beyond MAX_ACTIVITIES cannot come back, and their times are
    # not kept: created_at is recomputed only when every member is still retained.
    created_at = min(_utc(a.time) for a in retained) if len(retained) == len(members) else g.created_at
    return _build(g.key, members, counts, retained, _newest_actors(members), created_at, max(members), g)


def _by_key(activities: Iterable[Activity], template: str) -> dict[str, list[Activity]]:
    seen: set[str] = set()
    out: dict[str, list[Activity]] = {}
    for a in activities:
        if a.id not in seen:  # the same id twice is one activity
            seen.add(a.id)
            out.setdefault(group_key(template, a), []).append(a)
    return out


def _place(feed: list[Group], g: Group) -> None:
    """Insert ``g`` into a newest-first feed: a binary search and one memmove."""
    lo, hi = 0, len(feed)
    while lo < hi:
        mid = (lo + hi) // 2
        if feed[mid].newest_id > g.newest_id:
            lo = mid + 1
        else:
            hi = mid
    feed.insert(lo, g)


def _reorder(groups: Sequence[Group], positions: Iterable[int], updated: list[Group]) -> list[Group]:
    """``groups`` without the entries at ``positions``, with ``updated`` put in order."""
    feed = list(groups)
    for i in sorted(positions, reverse=True):
        del feed[i]
    if len(updated) > _SORT_THRESHOLD:
        feed.extend(updated)
        feed.sort(key=lambda g: g.newest_id, reverse=True)
    else:
        for g in updated:
            _place(feed, g)
    return feed


def _newest_first(groups: Iterable[Group]) -> list[Group]:
    return sorted(groups, key=lambda g: g.newest_id, reverse=True)


def aggregate(activities: Iterable[Activity], template: str) -> list[Group]:
    """Group ``activities`` by ``template``; newest group first. Input order does not matter."""
    built = (_add(key, None, acts) for key, acts in _by_key(activities, template).items())
    return _newest_first(g for g in built if g is not None)


def merge(groups: Sequence[Group], activities: Iterable[Activity], template: str, max_length: int) -> MergeResult:
    """Add ``activities`` to the feed ``groups`` (newest first), keeping ``max_length`` groups.

    Activities already in their group are ignored, so a retried fan-out changes nothing.
    A group trimmed off is in ``deleted``; one created and trimmed in the same call is in none.
    """
    incoming = _by_key(activities, template)
    index: dict[str, int] = {}
    if len(incoming) == 1:
        # Fan-out adds one activity to many feeds: find its group (usually near the top)
        # without indexing the whole feed.
        (only,) = incoming
        for i, g in enumerate(groups):
            if g.key == only:
                index[only] = i
                break
    else:
        index = {g.key: i for i, g in enumerate(groups)}
    created: dict[str, Group] = {}
    changed: dict[str, Group] = {}
    old_pos: list[int] = []
    for key, acts in incoming.items():
        at = index.get(key)
        ng = _add(key, groups[at] if at is not None else None, acts)
        if ng is None:
            continue
        if at is None:
            created[key] = ng
        else:
            changed[key] = ng
            old_pos.append(at)
    if not created and not changed and len(groups) <= max_length:
        return MergeResult(list(groups), [], [], [])
    feed = _reorder(groups, old_pos, [*changed.values(), *created.values()])
    kept, dropped = feed[:max(max_length, 0)], feed[max(max_length, 0):]
    deleted: list[Group] = []
    for g in dropped:
        if created.pop(g.key, None) is not None:
            continue  # never stored, so nothing to delete
        deleted.append(groups[index[g.key]] if changed.pop(g.key, None) is not None else g)
    return MergeResult(kept, _newest_first(created.values()), _newest_first(changed.values()), deleted)


def remove(groups: Sequence[Group], activity_ids: Iterable[str]) -> MergeResult:
    """Remove activities from the feed; a group left empty is deleted, others changed."""
    gone = set(activity_ids)
    changed: list[Group] = []
    deleted: list[Group] = []
    old_pos: list[int] = []
    for i, g in enumerate(groups):
        if any(aid in g.members for aid in gone):
            old_pos.append(i)
            ng = _without(g, gone)
            (changed if ng is not None else deleted).append(ng if ng is not None else g)
    if not old_pos:
        return MergeResult(list(groups), [], [], [])
    return MergeResult(_reorder(groups, old_pos, changed), [], _newest_first(changed), deleted)


def group_to_state(group: Group) -> dict[str, Any]:
    """A JSON-able form holding just what :func:`group_from_state` needs to rebuild exactly."""
    return {
        "key": group.key, "id": group.id, "verb": group.verb,
        "activities": [a.to_json() for a in group.activities],
        "members": dict(group.members), "created_at": format_time(group.created_at),
        "updated_at": format_time(group.updated_at),
    }


def group_from_state(d: Mapping[str, Any]) -> Group:
    """Rebuild a :class:`Group` from :func:`group_to_state` output (trusted data)."""
    members: dict[str, str] = dict(d["members"])
    counts: dict[str, int] = {}
    for actor in members.values():
        counts[actor] = counts.get(actor, 0) + 1
    return Group(
        key=d["key"], id=d["id"], verb=d["verb"],
        activities=tuple(Activity.from_json(a) for a in d["activities"]),
        activity_count=len(members), actors=_newest_actors(members), actor_count=len(counts),
        actor_counts=counts, members=members, created_at=parse_stored_time(d["created_at"]),
        updated_at=parse_stored_time(d["updated_at"]), newest_id=max(members),
    )
