"""Seen/read marks stay bounded by the feed, not its history (hub/storage/marks.py).

Marks of entries that left the feed (trimmed past ``max_length``) are dropped at the next
marking, from the Redis cache and from Cassandra alike, so the marks a count reads and a
reload after a Redis flush loads stay within the feed's length; the counts and every
entry's is_seen/is_read stay exact, before and after the flush.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from hub.config import Settings
from hub.core import Hub
from hub.ops import reads
from tests.conftest import uid
from tests.helpers import post

MAX = 3


@pytest.fixture
async def small_hub(settings: Settings) -> AsyncIterator[Hub]:
    from workers.context import close_hub, open_hub

    feeds = dict(settings.feeds)
    feeds["notification"] = dataclasses.replace(feeds["notification"], max_length=MAX, aggregate="{verb}")
    feeds["user"] = dataclasses.replace(feeds["user"], max_length=MAX)
    h = await open_hub(dataclasses.replace(settings, feeds=feeds))
    yield h
    await close_hub(h)


async def _rows(hub: Hub, feed: str) -> set[str]:
    rows = await hub.marks.db.execute("SELECT kind, gid FROM {ks}.feed_marks WHERE app = %s AND feed = %s",
                                      ("t1", feed))
    return {f"{r.kind}:{r.gid}" for r in rows}


async def _cached(hub: Hub, feed: str) -> set[str]:
    return set(await hub.redis.hkeys(hub.marks.keys("t1").marks(feed))) - {"!"}  # type: ignore[misc]  # redis-py: value | Awaitable


def _view(page: reads.Page) -> list[tuple[str, bool, bool]]:
    return [(e["id"], e["is_seen"], e["is_read"]) for e in page.results]


async def test_marks_of_trimmed_groups_go_and_counts_stay_exact(small_hub: Hub) -> None:
    hub, bob = small_hub, uid("bob")
    group = hub.group("notification")
    feed = group.feed_of(bob)

    async def read() -> reads.Page:
        return await reads.read_feed(hub, "t1", group, bob, 10, None)

    for verb in ("v1", "v2", "v3"):
        await post(hub, "t1", actor="alice", verb=verb, object="o", to=[feed])
    gids = [e["id"] for e in (await read()).results]
    assert len(gids) == 3
    assert await reads.mark(hub, "t1", group, bob, "read", gids) == {"unseen": 0, "unread": 0}
    assert await _cached(hub, feed) == {f"{k}:{g}" for k in ("seen", "read") for g in gids}

    # Two new groups trim the two oldest marked ones out of the feed.
    for verb in ("v4", "v5"):
        await post(hub, "t1", actor="alice", verb=verb, object="o", to=[feed])
    page = await read()
    assert (page.unseen, page.unread) == (2, 2)
    top = [e["id"] for e in page.results]
    assert top[2] == gids[0]  # v3, the newest of the first three, is still held

    # The next marking drops the marks of the trimmed groups, here and in Cassandra.
    assert await reads.mark(hub, "t1", group, bob, "seen", [top[0]]) == {"unseen": 1, "unread": 2}
    expected = {f"seen:{gids[0]}", f"read:{gids[0]}", f"seen:{top[0]}"}
    assert await _cached(hub, feed) == expected
    assert await _rows(hub, feed) == expected
    before = await read()
    assert _view(before) == [(top[0], True, False), (top[1], False, False), (gids[0], True, True)]

    # Redis loses the feed and its marks: rebuilt and reloaded, the answer is the same.
    await hub.feeds.drop("t1", feed)
    await hub.redis.delete(hub.marks.keys("t1").marks(feed))
    assert (await read()).to_json() == before.to_json()

    # However long the history, the marks never outgrow the feed (two kinds per entry).
    for i in range(12):
        await post(hub, "t1", actor="alice", verb=f"w{i}", object="o", to=[feed])
        newest = (await read()).results[0]["id"]
        await reads.mark(hub, "t1", group, bob, "read", [newest])
        assert len(await _cached(hub, feed)) <= 2 * MAX
        assert len(await _rows(hub, feed)) <= 2 * MAX
    page = await read()  # each of the three held was marked read when it came
    assert (page.unseen, page.unread) == (0, 0)
    assert all(e["is_seen"] and e["is_read"] for e in page.results) and len(page.results) == MAX


async def test_marks_of_trimmed_activities_go_in_flat_feeds(small_hub: Hub) -> None:
    hub, bob = small_hub, uid("bob")
    group = hub.group("user")
    feed = group.feed_of(bob)
    ids = [await post(hub, "t1", actor=bob, verb="post", object=f"n:{i}") for i in range(3)]
    assert await reads.mark(hub, "t1", group, bob, "seen", ids) == {"unseen": 0, "unread": 3}
    more = [await post(hub, "t1", actor=bob, verb="post", object=f"m:{i}") for i in range(2)]
    assert await reads.mark(hub, "t1", group, bob, "read", [more[1]]) == {"unseen": 1, "unread": 2}
    expected = {f"seen:{ids[2]}", f"seen:{more[1]}", f"read:{more[1]}"}
    assert await _cached(hub, feed) == expected
    assert await _rows(hub, feed) == expected
    await hub.feeds.drop("t1", feed)
    await hub.redis.delete(hub.marks.keys("t1").marks(feed))
    page = await reads.read_feed(hub, "t1", group, bob, 10, None)
    assert [e["id"] for e in page.results] == [more[1], more[0], ids[2]]
    assert (page.unseen, page.unread) == (1, 2)
