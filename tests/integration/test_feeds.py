"""Feed reads, aggregation, seen/read and authorization against the real services."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from hub.config import Settings
from hub.core import Hub
from hub.domain.activity import parse_activity
from hub.domain.tokens import issue_token
from hub.ops import fanout, intake
from tests.conftest import uid
from tests.helpers import post, token


async def test_notification_groups_seen_read_and_reopen(client, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    auth = {"Authorization": f"Bearer {token(settings, bob)}"}
    r = await client.get(f"/v1/feeds/notification/{bob}", headers=auth)
    assert r.status == 200, await r.text()
    assert await r.json() == {"results": [], "next": None, "unseen": 0, "unread": 0}
    for actor in ("alice", "carol", "alice"):
        await post(hub, "t1", actor=actor, verb="like", object="photo:42", to=[f"notification:{bob}"])
    await post(hub, "t1", actor="dan", verb="comment", object="photo:42", to=[f"notification:{bob}"])
    body = await (await client.get(f"/v1/feeds/notification/{bob}", headers=auth)).json()
    assert [g["verb"] for g in body["results"]] == ["comment", "like"]
    like = body["results"][1]
    assert (like["activity_count"], like["actor_count"], like["actors"]) == (3, 2, ["alice", "carol"])
    assert (body["unseen"], body["unread"]) == (2, 2)
    assert like["is_seen"] is False and like["is_read"] is False

    r = await client.post(f"/v1/feeds/notification/{bob}/read", json={"ids": [like["id"]]}, headers=auth)
    assert await r.json() == {"unseen": 1, "unread": 1}
    r = await client.post(f"/v1/feeds/notification/{bob}/seen", json={"all": True}, headers=auth)
    assert await r.json() == {"unseen": 0, "unread": 1}

    # A new like reopens the group: top of the feed, unseen and unread again.
    await post(hub, "t1", actor="erin", verb="like", object="photo:42", to=[f"notification:{bob}"])
    body = await (await client.get(f"/v1/feeds/notification/{bob}", headers=auth)).json()
    top = body["results"][0]
    assert top["id"] == like["id"] and top["activity_count"] == 4
    assert top["is_seen"] is False and top["is_read"] is False
    assert (body["unseen"], body["unread"]) == (1, 2)

    # Redis loses everything for this feed: the next read is identical (marks included).
    await hub.feeds.drop("t1", f"notification:{bob}")
    await hub.redis.delete(hub.feeds.keys("t1").marks(f"notification:{bob}"))
    again = await (await client.get(f"/v1/feeds/notification/{bob}", headers=auth)).json()
    assert again == body


async def test_user_reads_only_own_feeds(client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    bob, eve = uid("bob"), uid("eve")
    auth = {"Authorization": f"Bearer {token(settings, eve)}"}
    for method, path in (("GET", f"/v1/feeds/timeline/{bob}"), ("POST", f"/v1/feeds/notification/{bob}/seen"),
                         ("POST", f"/v1/feeds/notification/{bob}/read")):
        r = await client.request(method, path, json={"all": True}, headers=auth)
        assert r.status == 403
        assert (await r.json())["error"]["code"] == "forbidden"
    r = await client.get(f"/v1/feeds/timeline/{bob}")
    assert r.status == 401 and (await r.json())["error"]["code"] == "bad_token"
    expired = issue_token("t1", settings.apps["t1"].key, bob, 1, now=int(time.time()) - 10)
    r = await client.get(f"/v1/feeds/timeline/{bob}", headers={"Authorization": f"Bearer {expired}"})
    assert r.status == 401 and (await r.json())["error"]["code"] == "expired"
    forged = issue_token("t1", settings.apps["t2"].key, bob, 600, now=int(time.time()))
    r = await client.get(f"/v1/feeds/timeline/{bob}", headers={"Authorization": f"Bearer {forged}"})
    assert r.status == 401 and (await r.json())["error"]["code"] == "bad_token"


async def test_flat_paging_under_concurrent_inserts(client, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    alice, bob = uid("alice"), uid("bob")
    auth = {"Authorization": f"Bearer {token(settings, bob)}"}
    from hub.ops.follow import follow

    await follow(hub, "t1", bob, alice, 0)
    posted = [await post(hub, "t1", actor=alice, verb="post", object=f"note:{i}") for i in range(12)]
    seen: list[str] = []
    cursor = None
    while True:
        q = "?limit=5" + (f"&id_lt={cursor}" if cursor else "")
        body = await (await client.get(f"/v1/feeds/timeline/{bob}{q}", headers=auth)).json()
        seen += [a["id"] for a in body["results"]]
        await post(hub, "t1", actor=alice, verb="post", object="note:new")  # arrives mid-paging
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == list(reversed(posted))


# --- helpers for the tests below ------------------------------------------------------

import dataclasses  # noqa: E402

from hub.ops.follow import follow  # noqa: E402


def auth(settings: Settings, user: str, app: str = "t1") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(settings, user, app)}"}


async def read(client, path: str, headers: dict[str, str]) -> dict:  # type: ignore[no-untyped-def, type-arg]
    r = await client.get(path, headers=headers)
    assert r.status == 200, await r.text()
    return await r.json()  # type: ignore[no-any-return]


async def mark(client, path: str, body: object, headers: dict[str, str]) -> dict:  # type: ignore[no-untyped-def, type-arg]
    r = await client.post(path, json=body, headers=headers)
    assert r.status == 200, await r.text()
    return await r.json()  # type: ignore[no-any-return]


async def read_all(client, path: str, headers: dict[str, str], limit: int) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    out: list[dict] = []  # type: ignore[type-arg]
    cursor = None
    while True:
        q = f"?limit={limit}" + (f"&id_lt={cursor}" if cursor else "")
        body = await read(client, path + q, headers)
        assert len(body["results"]) <= limit
        out += body["results"]
        cursor = body["next"]
        if cursor is None:
            return out


def newest_distinct(actors: list[str], n: int = 5) -> list[str]:
    out: list[str] = []
    for a in actors:
        if a not in out:
            out.append(a)
    return out[:n]


# --- aggregation through the real feeds -------------------------------------------------

async def test_aggregated_day_boundary_same_actor_and_more_than_15(client, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob, alice = uid("bob"), uid("alice")
    others = [uid(f"a{i}") for i in range(6)]
    h = auth(settings, bob)
    for a in (alice, *others):
        await follow(hub, "t1", bob, a, 0)
    # timeline_aggregated is "{verb}:{day}": 23:59 and 00:01 UTC fall in two groups.
    late = await post(hub, "t1", actor=alice, verb="like", object="p:1", time="2026-03-01T23:59:00Z")
    early = await post(hub, "t1", actor=alice, verb="like", object="p:2", time="2026-03-02T00:01:00+00:00")
    # The same actor twice in one group counts one actor.
    body = await read(client, f"/v1/feeds/timeline_aggregated/{bob}", h)
    assert [g["group"] for g in body["results"]] == ["like:2026-03-02", "like:2026-03-01"]
    assert [[a["id"] for a in g["activities"]] for g in body["results"]] == [[early], [late]]
    assert (body["unseen"], body["unread"]) == (2, 2)
    again = await post(hub, "t1", actor=alice, verb="like", object="p:3", time="2026-03-02T08:00:00Z")
    g = (await read(client, f"/v1/feeds/timeline_aggregated/{bob}", h))["results"][0]
    assert (g["activity_count"], g["actor_count"], g["actors"]) == (2, 1, [alice])
    assert [a["id"] for a in g["activities"]] == [again, early]
    assert (g["created_at"], g["updated_at"]) == ("2026-03-02T00:01:00.000000Z", "2026-03-02T08:00:00.000000Z")

    # More than 15 activities: the newest 15 are shown, the counts stay exact.
    posted = [(again, alice), (early, alice)]
    for i in range(18):
        actor = others[i % len(others)]
        aid = await post(hub, "t1", actor=actor, verb="like", object=f"q:{i}", time=f"2026-03-02T09:{i:02d}:00Z")
        posted.insert(0, (aid, actor))
    body = await read(client, f"/v1/feeds/timeline_aggregated/{bob}", h)
    assert len(body["results"]) == 2
    g = body["results"][0]
    assert g["activity_count"] == 20 and len(g["activities"]) == 15
    assert [a["id"] for a in g["activities"]] == [i for i, _ in posted[:15]]
    assert g["actor_count"] == 7
    assert g["actors"] == newest_distinct([a for _, a in posted])
    assert g["verb"] == "like" and g["is_seen"] is False and "is_read" not in g

    # The notification template "{verb}:{object}:{day}" splits at midnight too.
    carol = uid("carol")
    for t in ("2026-03-01T23:59:59Z", "2026-03-02T00:01:00Z", "2026-03-02T00:02:00Z"):
        await post(hub, "t1", actor=alice, verb="comment", object="p:9", time=t, to=[f"notification:{carol}"])
    body = await read(client, f"/v1/feeds/notification/{carol}", auth(settings, carol))
    assert [(g["group"], g["activity_count"], g["actor_count"]) for g in body["results"]] == [
        ("comment:p:9:2026-03-02", 2, 1), ("comment:p:9:2026-03-01", 1, 1)]
    assert (body["unseen"], body["unread"]) == (2, 2)


async def test_deleted_activity_updates_then_removes_its_group(client, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob, alice, carol = uid("bob"), uid("alice"), uid("carol")
    h = auth(settings, bob)
    feed = f"/v1/feeds/notification/{bob}"
    a1 = await post(hub, "t1", actor=alice, verb="like", object="p:1", to=[f"notification:{bob}"])
    c1 = await post(hub, "t1", actor=carol, verb="like", object="p:1", to=[f"notification:{bob}"])
    other = await post(hub, "t1", actor=carol, verb="share", object="p:2", to=[f"notification:{bob}"])
    await follow(hub, "t1", bob, carol, 0)
    c2 = await post(hub, "t1", actor=carol, verb="like", object="p:5")
    agg = f"/v1/feeds/timeline_aggregated/{bob}"
    assert (await read(client, agg, h))["results"][0]["activity_count"] == 1
    body = await read(client, feed, h)
    assert [g["verb"] for g in body["results"]] == ["share", "like"]
    like_id = body["results"][1]["id"]

    async def delete(aid: str) -> None:
        assert await intake.delete(hub, "t1", aid, None) == aid
        await fanout.remove_everywhere(hub, "t1", aid)

    await delete(c1)  # the group's newest: the group drops below "share" and keeps alice
    body = await read(client, feed, h)
    assert [g["verb"] for g in body["results"]] == ["share", "like"]
    like = body["results"][1]
    assert like["id"] == like_id
    assert (like["activity_count"], like["actor_count"], like["actors"]) == (1, 1, [alice])
    assert [a["id"] for a in like["activities"]] == [a1]
    assert (body["unseen"], body["unread"]) == (2, 2)
    # A rebuilt cache agrees (the deleted activity left the sources too).
    await hub.feeds.drop("t1", f"notification:{bob}")
    assert await read(client, feed, h) == body

    await delete(a1)  # now empty: the group is gone and the counts follow
    body = await read(client, feed, h)
    assert [g["activities"][0]["id"] for g in body["results"]] == [other]
    assert (body["unseen"], body["unread"]) == (1, 1)
    await hub.feeds.drop("t1", f"notification:{bob}")
    assert await read(client, feed, h) == body

    await delete(c2)  # a fanned-out activity leaves the follower's aggregated feed
    body = await read(client, agg, h)
    assert body["results"] == [] and (body["unseen"], body["unread"]) == (0, 0)
    r = await client.get(f"/v1/feeds/timeline/{bob}", headers=h)
    assert (await r.json())["results"] == []


# --- seen / read ------------------------------------------------------------------------

async def test_seen_read_by_ids_all_reopen_and_durable(client, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    h = auth(settings, bob)
    path = f"/v1/feeds/notification/{bob}"
    for i in range(4):
        await post(hub, "t1", actor="alice", verb="like", object=f"p:{i}", to=[f"notification:{bob}"])
    body = await read(client, path, h)
    ids = [g["id"] for g in body["results"]]  # p:3, p:2, p:1, p:0
    assert (body["unseen"], body["unread"]) == (4, 4)

    assert await mark(client, path + "/read", {"ids": [ids[0]]}, h) == {"unseen": 3, "unread": 3}  # read implies seen
    assert await mark(client, path + "/seen", {"ids": [ids[1], ids[1]]}, h) == {"unseen": 2, "unread": 3}
    # Unknown ids are ignored; marking twice changes nothing.
    assert await mark(client, path + "/seen", {"ids": ["nope", ids[1]]}, h) == {"unseen": 2, "unread": 3}
    body = await read(client, path, h)
    assert (body["unseen"], body["unread"]) == (2, 3)
    assert [(g["is_seen"], g["is_read"]) for g in body["results"]] == [
        (True, True), (True, False), (False, False), (False, False)]

    # Durable: the marks hash (and the feed) leave Redis, the answer stays the same.
    await hub.redis.delete(hub.marks.keys("t1").marks(f"notification:{bob}"))
    assert await read(client, path, h) == body
    await hub.feeds.drop("t1", f"notification:{bob}")
    await hub.redis.delete(hub.marks.keys("t1").marks(f"notification:{bob}"))
    assert await read(client, path, h) == body

    assert await mark(client, path + "/seen", {"all": True}, h) == {"unseen": 0, "unread": 3}
    assert await mark(client, path + "/read", {"all": True}, h) == {"unseen": 0, "unread": 0}
    body = await read(client, path, h)
    assert all(g["is_seen"] and g["is_read"] for g in body["results"]) and (body["unseen"], body["unread"]) == (0, 0)

    # A new group and a reopened one: both unseen and unread, counts exact on every read.
    await post(hub, "t1", actor="carol", verb="like", object="p:new", to=[f"notification:{bob}"])
    assert (lambda b: (b["unseen"], b["unread"]))(await read(client, path, h)) == (1, 1)
    await post(hub, "t1", actor="carol", verb="like", object="p:1", to=[f"notification:{bob}"])
    body = await read(client, path, h)
    assert (body["unseen"], body["unread"]) == (2, 2)
    assert [g["id"] for g in body["results"]][0] == ids[2]  # the reopened group is on top
    assert body["results"][0]["is_seen"] is False and body["results"][0]["activity_count"] == 2
    assert await mark(client, path + "/read", {"ids": [ids[2]]}, h) == {"unseen": 1, "unread": 1}
    await hub.redis.delete(hub.marks.keys("t1").marks(f"notification:{bob}"))
    after = await read(client, path, h)
    assert (after["unseen"], after["unread"]) == (1, 1)

    # Flat feeds count activities.
    alice = uid("alice")
    await follow(hub, "t1", bob, alice, 0)
    posted = [await post(hub, "t1", actor=alice, verb="post", object=f"n:{i}") for i in range(3)]
    tl = f"/v1/feeds/timeline/{bob}"
    assert (lambda b: (b["unseen"], b["unread"]))(await read(client, tl, h)) == (3, 3)
    assert await mark(client, tl + "/seen", {"ids": [posted[0]]}, h) == {"unseen": 2, "unread": 3}
    assert await mark(client, tl + "/read", {"ids": [posted[1]]}, h) == {"unseen": 1, "unread": 2}
    assert await mark(client, tl + "/read", {"all": True}, h) == {"unseen": 0, "unread": 0}
    await post(hub, "t1", actor=alice, verb="post", object="n:new")
    await hub.redis.delete(hub.marks.keys("t1").marks(f"timeline:{bob}"))
    assert (lambda b: (b["unseen"], b["unread"]))(await read(client, tl, h)) == (1, 1)


# --- authorization and bad requests -----------------------------------------------------

async def test_authorization_for_every_user_endpoint(client, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob, eve = uid("bob"), uid("eve")
    await post(hub, "t1", actor="alice", verb="like", object="p:1", to=[f"notification:{bob}"])
    own = auth(settings, bob)
    before = await read(client, f"/v1/feeds/notification/{bob}", own)
    assert (before["unseen"], before["unread"]) == (1, 1)
    now = int(time.time())
    bad_tokens = {
        "bad_token": [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
                      {"Authorization": "Bearer not.a.jwt"},
                      {"Authorization": f"Bearer {issue_token('t1', settings.apps['t2'].key, bob, 600, now=now)}"},
                      {"Authorization": f"Bearer {token(settings, bob)}x"}],
        "expired": [{"Authorization": f"Bearer {issue_token('t1', settings.apps['t1'].key, bob, 1, now=now - 60)}"}],
    }
    endpoints = [("GET", f"/v1/feeds/{{g}}/{bob}"), ("POST", f"/v1/feeds/{{g}}/{bob}/seen"),
                 ("POST", f"/v1/feeds/{{g}}/{bob}/read")]
    for group in ("notification", "timeline", "timeline_aggregated"):
        for method, tmpl in endpoints:
            path = tmpl.format(g=group)
            for hdrs in ({"Authorization": f"Bearer {token(settings, eve)}"},
                         {"Authorization": f"Bearer {token(settings, eve, app='t2')}"}):
                r = await client.request(method, path, json={"all": True}, headers=hdrs)
                assert r.status == 403, (method, path)
                assert (await r.json())["error"]["code"] == "forbidden"
            for code, variants in bad_tokens.items():
                for hdrs in variants:
                    r = await client.request(method, path, json={"all": True}, headers=hdrs)
                    assert r.status == 401, (method, path, hdrs)
                    assert (await r.json())["error"]["code"] == code
    # Nothing changed for the owner.
    assert await read(client, f"/v1/feeds/notification/{bob}", own) == before

    path = f"/v1/feeds/notification/{bob}"
    for q in ("limit=0", "limit=101", "limit=abc", "limit=-1", "limit=", "id_lt=zzz", "id_lt=abc|def",
              "limit=2&id_lt=" + "0" * 40):
        r = await client.get(f"{path}?{q}", headers=own)
        assert r.status == 400, q
        assert (await r.json())["error"]["code"] == "invalid_request", q
    r = await client.get(f"/v1/feeds/timeline/{bob}?id_lt=abc|def", headers=own)
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_request"
    for body in ({}, {"ids": "x"}, {"ids": [1]}, {"ids": [""]}, {"all": False}, {"all": "yes"},
                 {"all": True, "ids": []}, [], "all", {"ids": ["x"] * 1001}):
        for kind in ("seen", "read"):
            r = await client.post(f"{path}/{kind}", json=body, headers=own)
            assert r.status == 400, body
            assert (await r.json())["error"]["code"] == "invalid_request", body
    r = await client.post(f"{path}/seen", data=b"{not json", headers=own)
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"
    for method, tmpl in endpoints:
        r = await client.request(method, tmpl.format(g="nosuchgroup"), json={"all": True}, headers=own)
        assert r.status == 404, tmpl
        assert (await r.json())["error"]["code"] == "not_found"
    assert await read(client, path, own) == before


async def test_app_signed_read(client, t1, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    for i in range(3):
        await post(hub, "t1", actor="alice", verb="like", object=f"p:{i}", to=[f"notification:{bob}"])
    mine = await read(client, f"/v1/feeds/notification/{bob}?limit=2", auth(settings, bob))
    r = await t1.call("GET", f"/feeds/notification/{bob}?limit=2")
    assert r.status == 200, await r.text()
    assert await r.json() == mine
    r = await t1.call("GET", f"/feeds/notification/{bob}?limit=2&id_lt={mine['next']}")
    assert [g["id"] for g in (await r.json())["results"]] == [
        g["id"] for g in (await read(client, f"/v1/feeds/notification/{bob}", auth(settings, bob)))["results"]][2:]
    r = await client.get(f"/v1/apps/t1/feeds/notification/{bob}")
    assert r.status == 401 and (await r.json())["error"]["code"] == "bad_signature"
    r = await client.get(f"/v1/apps/t1/feeds/notification/{bob}", headers=auth(settings, bob))
    assert r.status == 401
    r = await t1.call("GET", f"/feeds/notification/{bob}?limit=500")
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_request"
    r = await t1.call("GET", f"/feeds/nosuchgroup/{bob}")
    assert r.status == 404


# --- paging of aggregated feeds ---------------------------------------------------------

async def test_aggregated_paging_with_concurrent_inserts(client, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    h = auth(settings, bob)
    path = f"/v1/feeds/notification/{bob}"
    for i in range(5):
        await post(hub, "t1", actor="alice", verb="like", object=f"p:{i}", to=[f"notification:{bob}"])
    full = await read(client, path, h)
    assert len(full["results"]) == 5 and full["next"] is None
    pages: list[list[str]] = []
    nexts: list[str | None] = []
    cursor = None
    n = 0
    while True:
        body = await read(client, f"{path}?limit=2" + (f"&id_lt={cursor}" if cursor else ""), h)
        pages.append([g["id"] for g in body["results"]])
        nexts.append(body["next"])
        # Mid-paging: a new group, and a like joining an already-read group (it moves to the top).
        await post(hub, "t1", actor="carol", verb="like", object=f"new:{n}", to=[f"notification:{bob}"])
        await post(hub, "t1", actor="carol", verb="like", object="p:4", to=[f"notification:{bob}"])
        n += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert nexts[-1] is None and all(nexts[:-1])
    flat = [i for p in pages for i in p]
    assert flat == [g["id"] for g in full["results"]]
    assert len(set(flat)) == 5


# --- Redis is a cache -------------------------------------------------------------------

async def test_redis_flush_between_reads_gives_identical_answers(client, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob, alice, carol = uid("bob"), uid("alice"), uid("carol")
    h = auth(settings, bob)
    await follow(hub, "t1", bob, alice, 0)
    for i in range(4):
        await post(hub, "t1", actor=carol, verb="post", object=f"old:{i}")
    await follow(hub, "t1", bob, carol, 2)  # copies carol's latest 2 in
    for i in range(6):
        actor = alice if i % 2 else carol
        await post(hub, "t1", actor=actor, verb=("like", "post")[i % 2], object=f"p:{i}", to=[f"notification:{bob}"])
    paths = [f"/v1/feeds/{g}/{bob}" for g in ("timeline", "timeline_aggregated", "notification")]
    first = {p: await read(client, p, h) for p in paths}
    assert len(first[paths[0]]["results"]) == 8
    await mark(client, paths[2] + "/read", {"ids": [first[paths[2]]["results"][1]["id"]]}, h)
    await mark(client, paths[1] + "/seen", {"ids": [first[paths[1]]["results"][0]["id"]]}, h)
    await mark(client, paths[0] + "/seen", {"ids": [first[paths[0]]["results"][2]["id"]]}, h)
    before = {p: await read(client, p, h) for p in paths}
    paged_before = {p: await read_all(client, p, h, 3) for p in paths}

    for g in ("timeline", "timeline_aggregated", "notification"):
        await hub.feeds.drop("t1", f"{g}:{bob}")
        await hub.redis.delete(hub.marks.keys("t1").marks(f"{g}:{bob}"))
    assert {p: await read(client, p, h) for p in paths} == before

    # Everything of the app in Redis goes: feeds, marks, bodies, follower caches.
    keys = [k for pattern in hub.feeds.keys("t1").patterns()
            async for k in hub.redis.scan_iter(match=pattern, count=1000)]
    assert keys
    for i in range(0, len(keys), 500):
        await hub.redis.delete(*keys[i : i + 500])
    assert {p: await read(client, p, h) for p in paths} == before
    for i in range(0, len(keys), 500):
        await hub.redis.delete(*keys[i : i + 500])
    assert {p: await read_all(client, p, h, 3) for p in paths} == paged_before


# --- celebrities ------------------------------------------------------------------------

async def test_celebrity_activities_merged_at_read(settings: Settings, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    from web.app import create_app
    from workers.context import close_hub, open_hub

    s = dataclasses.replace(settings, fanout=dataclasses.replace(settings.fanout, celebrity_threshold=2))
    client = await aiohttp_client(create_app(s))
    hub = await open_hub(s)
    try:
        bob, star, alice = uid("bob"), uid("star"), uid("alice")
        for f in (bob, uid("x"), uid("y")):
            await follow(hub, "t1", f, star, 0)
        await follow(hub, "t1", bob, alice, 0)
        h = auth(s, bob)
        tl = f"/v1/feeds/timeline/{bob}"
        await read(client, tl, h)  # bob's timeline is cached: fan-out would write there
        expected: list[str] = []
        alices: set[str] = set()
        for i in range(9):
            if i % 3 == 0:
                expected.insert(0, await post(hub, "t1", actor=alice, verb="post", object=f"a:{i}"))
                alices.add(expected[0])
            else:  # plan only: a celebrity's activity is not fanned out
                (res,) = await intake.accept(hub, "t1", [parse_activity(
                    {"actor": star, "verb": "post", "object": f"s:{i}"}, now=datetime.now(timezone.utc))], batch=False)
                assert await fanout.plan(hub, "t1", str(res["id"])) == 0
                expected.insert(0, str(res["id"]))
        assert star in await hub.follows.celebrities("t1")
        # Not in bob's cached feed: pulled at read time.
        assert set(await hub.feeds.flat_ids("t1", f"timeline:{bob}", 100)) == alices
        body = await read(client, tl, h)
        assert [a["id"] for a in body["results"]] == expected
        assert [a["actor"] for a in body["results"]][:3] == [star, star, alice]
        for limit in (1, 2, 4):
            paged = await read_all(client, tl, h, limit)
            assert [a["id"] for a in paged] == expected, limit
        # Paging while both kinds keep arriving: no repeats, no skips.
        seen: list[str] = []
        cursor = None
        while True:
            page = await read(client, f"{tl}?limit=2" + (f"&id_lt={cursor}" if cursor else ""), h)
            seen += [a["id"] for a in page["results"]]
            await post(hub, "t1", actor=alice, verb="post", object="late")
            (res,) = await intake.accept(hub, "t1", [parse_activity(
                {"actor": star, "verb": "post", "object": "late"}, now=datetime.now(timezone.utc))], batch=False)
            await fanout.plan(hub, "t1", str(res["id"]))
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == expected
        # Flushed: the same answer from Cassandra.
        top = await read(client, f"{tl}?limit=10", h)
        await hub.feeds.drop("t1", f"timeline:{bob}")
        await hub.feeds.drop("t1", f"user:{star}")
        await hub.redis.delete(hub.follows.keys("t1").celebrities())
        assert await read(client, f"{tl}?limit=10", h) == top
        # Another follower who followed after these posts gets none of them.
        late = uid("late")
        await follow(hub, "t1", late, star, 0)
        assert (await read(client, f"/v1/feeds/timeline/{late}", auth(s, late)))["results"] == []
    finally:
        await close_hub(hub)
