"""Archive, unarchive and the filtered views (docs/api.md, Archive and Filters).

Archived entries leave the default view and the counts, come back when an activity
joins them, are durable (identical after the feed's Redis keys are dropped), and the
filtered views page with the default view's cursor guarantees.
"""

from __future__ import annotations

from typing import Any

import pytest

from hub.config import Settings
from hub.core import Hub
from hub.ops import archive, reads
from tests.conftest import uid
from tests.helpers import post, token


def _ids(page: reads.Page) -> list[str]:
    return [e["id"] for e in page.results]


async def _read(hub: Hub, group: str, user: str, filter: str = "all", limit: int = 25,
                cursor: str | None = None) -> reads.Page:
    return await reads.read_feed(hub, "t1", hub.group(group), user, limit, cursor, filter)


async def _flush(hub: Hub, group: str, user: str) -> None:
    """Redis loses this feed and its marks (only the test's own keys)."""
    feed = f"{group}:{user}"
    await hub.feeds.drop("t1", feed)
    await hub.redis.delete(hub.marks.keys("t1").marks(feed))


async def _all_views(hub: Hub, group: str, user: str) -> dict[str, Any]:
    return {f: (await _read(hub, group, user, f)).to_json() for f in ("all", "unread", "unseen", "archived")}


@pytest.mark.parametrize("group", ["notification", "user"])
async def test_archive_by_ids_counts_filters_and_flush(hub: Hub, group: str) -> None:
    bob = uid("bob")
    feed = f"{group}:{bob}"
    actor = "alice" if group == "notification" else bob
    for i in range(4):
        await post(hub, "t1", actor=actor, verb=f"v{i}", object=f"o{i}", to=[feed] if group == "notification" else [])
    g = hub.group(group)
    first = await _read(hub, group, bob)
    ids = _ids(first)
    assert len(ids) == 4 and (first.unseen, first.unread) == (4, 4)

    await reads.mark(hub, "t1", g, bob, "read", [ids[0]])
    assert await archive.archive(hub, "t1", g, bob, [ids[0], ids[1], "nope"]) == {"unseen": 2, "unread": 2}
    page = await _read(hub, group, bob)
    assert _ids(page) == ids[2:] and (page.unseen, page.unread) == (2, 2)
    assert _ids(await _read(hub, group, bob, "archived")) == ids[:2]
    assert _ids(await _read(hub, group, bob, "unread")) == ids[2:]
    await reads.mark(hub, "t1", g, bob, "seen", [ids[2]])
    assert _ids(await _read(hub, group, bob, "unseen")) == [ids[3]]

    before = await _all_views(hub, group, bob)
    await _flush(hub, group, bob)
    assert await _all_views(hub, group, bob) == before

    assert await archive.unarchive(hub, "t1", g, bob, [ids[1]]) == {"unseen": 2, "unread": 3}
    assert _ids(await _read(hub, group, bob)) == [ids[1], *ids[2:]]
    assert await archive.unarchive(hub, "t1", g, bob, None) == {"unseen": 2, "unread": 3}
    assert _ids(await _read(hub, group, bob)) == ids
    assert await hub.redis.hget(hub.marks.keys("t1").marks(feed), "@") is None  # hot path again


async def test_archive_all_and_a_new_activity_brings_a_group_back(hub: Hub) -> None:
    bob = uid("bob")
    feed = f"notification:{bob}"
    g = hub.group("notification")
    for obj in ("p1", "p2", "p3"):
        await post(hub, "t1", actor="alice", verb="like", object=obj, to=[feed])
    ids = _ids(await _read(hub, "notification", bob))
    assert await archive.archive(hub, "t1", g, bob, None) == {"unseen": 0, "unread": 0}
    assert _ids(await _read(hub, "notification", bob)) == []
    assert _ids(await _read(hub, "notification", bob, "archived")) == ids

    # carol likes p2 too: its group joins the top, unseen and unread, out of the archive.
    await post(hub, "t1", actor="carol", verb="like", object="p2", to=[feed])
    page = await _read(hub, "notification", bob)
    assert _ids(page) == [ids[1]] and (page.unseen, page.unread) == (1, 1)
    assert await archive.unarchive(hub, "t1", g, bob, [ids[1]]) == {"unseen": 1, "unread": 1}  # not archived now
    assert page.results[0]["activity_count"] == 2 and page.results[0]["is_seen"] is False
    assert _ids(await _read(hub, "notification", bob, "archived")) == [ids[0], ids[2]]
    await _flush(hub, "notification", bob)
    again = await _read(hub, "notification", bob)
    assert again.to_json() == page.to_json()


async def test_filtered_pages_never_repeat_or_skip_while_entries_arrive(hub: Hub) -> None:
    bob = uid("bob")
    feed = f"notification:{bob}"
    g = hub.group("notification")
    for i in range(9):
        await post(hub, "t1", actor="alice", verb="like", object=f"p{i}", to=[feed])
    ids = _ids(await _read(hub, "notification", bob, limit=50))
    await reads.mark(hub, "t1", g, bob, "read", ids[::3])  # 0, 3, 6 read
    await archive.archive(hub, "t1", g, bob, [ids[1]])  # 1 archived
    want = [i for n, i in enumerate(ids) if n % 3 != 0 and n != 1]
    seen: list[str] = []
    cursor = None
    while True:
        page = await _read(hub, "notification", bob, "unread", limit=2, cursor=cursor)
        seen += _ids(page)
        await post(hub, "t1", actor="alice", verb="like", object=f"new{len(seen)}", to=[feed])  # above every cursor
        if page.next is None:
            break
        cursor = page.next
    assert seen == want
    default: list[str] = []
    cursor = None
    while True:
        page = await _read(hub, "notification", bob, limit=3, cursor=cursor)
        default += _ids(page)
        if page.next is None:
            break
        cursor = page.next
        await post(hub, "t1", actor="alice", verb="like", object=f"more{len(default)}", to=[feed])
    assert len(default) == len(set(default))
    assert [i for i in default if i in ids] == [i for i in ids if i != ids[1]]


async def test_archive_over_http(client, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob, eve = uid("bob"), uid("eve")
    feed = f"notification:{bob}"
    await post(hub, "t1", actor="alice", verb="like", object="p", to=[feed])
    auth = {"Authorization": f"Bearer {token(settings, bob)}"}
    r = await client.get(f"/v1/feeds/notification/{bob}", headers=auth)
    gid = (await r.json())["results"][0]["id"]

    # Another user's feed: 403, nothing changes.
    r = await client.post(f"/v1/feeds/notification/{bob}/archive", json={"all": True},
                          headers={"Authorization": f"Bearer {token(settings, eve)}"})
    assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    assert (await _read(hub, "notification", bob)).unread == 1

    r = await client.post(f"/v1/feeds/notification/{bob}/archive", json={"ids": [gid]}, headers=auth)
    assert r.status == 200 and await r.json() == {"unseen": 0, "unread": 0}
    r = await client.get(f"/v1/feeds/notification/{bob}?filter=archived", headers=auth)
    assert [e["id"] for e in (await r.json())["results"]] == [gid]
    r = await client.post(f"/v1/feeds/notification/{bob}/unarchive", json={"all": True}, headers=auth)
    assert await r.json() == {"unseen": 1, "unread": 1}

    for bad in ("nope", "", "ALL"):
        r = await client.get(f"/v1/feeds/notification/{bob}?filter={bad}", headers=auth)
        err = (await r.json())["error"]
        assert r.status == 400 and (err["code"], err["field"]) == ("invalid_request", "filter")
    r = await client.post(f"/v1/feeds/notification/{bob}/archive", json={"ids": "x"}, headers=auth)
    assert r.status == 400 and (await r.json())["error"]["field"] == "ids"
