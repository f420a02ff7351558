"""Feed reads, aggregation, seen/read and authorization against the real services."""

from __future__ import annotations

import time

from hub.config import Settings
from hub.core import Hub
from hub.domain.tokens import issue_token
from hub.ops import fanout, intake
from hub.domain.activity import parse_activity
from datetime import datetime, timezone
from tests.conftest import uid


def token(settings: Settings, user: str, app: str = "t1", ttl: int = 600) -> str:
    a = settings.apps[app]
    return issue_token(a.id, a.key, user, ttl, now=int(time.time()))


async def post(hub: Hub, app: str, **fields: object) -> str:
    """Store and fan out synchronously (the worker's jobs, run inline)."""
    (res,) = await intake.accept(hub, app, [parse_activity(fields, now=datetime.now(timezone.utc))], batch=False)
    aid = str(res["id"])
    await fanout.plan(hub, app, aid, 0)
    followers = await hub.follows.followers(app, str(fields["actor"]))
    await fanout.write_chunk(hub, app, aid, followers)
    return aid


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
        q = f"?limit=5" + (f"&id_lt={cursor}" if cursor else "")
        body = await (await client.get(f"/v1/feeds/timeline/{bob}{q}", headers=auth)).json()
        seen += [a["id"] for a in body["results"]]
        await post(hub, "t1", actor=alice, verb="post", object="note:new")  # arrives mid-paging
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == list(reversed(posted))
