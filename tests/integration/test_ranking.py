"""Ranked flat feeds (``ranking = "weighted"``) through the API, against the real services."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.config import FeedGroup, Settings
from hub.core import Hub
from hub.domain.activity import parse_activity
from hub.domain.ranking import rank_score
from hub.ops import fanout, intake
from hub.ops.follow import follow
from tests.conftest import uid
from tests.helpers import post, token

WEIGHTS = (("likes", 1.0), ("shares", 2.0))
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)


def ranked_group(max_length: int = 50) -> FeedGroup:
    return FeedGroup("popular", "flat", "user", max_length, None, "weighted", 1.0, WEIGHTS)


@pytest.fixture
async def env(settings: Settings, aiohttp_client: Any) -> AsyncIterator[tuple[Any, Hub, Settings]]:
    from web.app import create_app
    from workers.context import close_hub, open_hub

    s = dataclasses.replace(
        settings, feeds={**settings.feeds, "popular": ranked_group(8)},
        fanout=dataclasses.replace(settings.fanout, celebrity_threshold=2),
    )
    client = await aiohttp_client(create_app(s))
    hub = await open_hub(s)
    try:
        yield client, hub, s
    finally:
        await close_hub(hub)


def auth(s: Settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(s, user)}"}


async def read(client: Any, path: str, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.get(path, headers=headers)
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def read_all(client: Any, path: str, headers: dict[str, str], limit: int) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        body = await read(client, f"{path}?limit={limit}" + (f"&id_lt={cursor}" if cursor else ""), headers)
        out += [a["id"] for a in body["results"]]
        cursor = body["next"]
        if cursor is None:
            return out


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def expected_order(posted: dict[str, tuple[int, dict[str, Any]]]) -> list[str]:
    """Ids by the documented formula, computed here from what was posted."""
    def key(i: str) -> tuple[float, str]:
        minutes, extra = posted[i]
        return rank_score(T0 + timedelta(minutes=minutes), extra, 1.0, WEIGHTS), i

    return sorted(posted, key=key, reverse=True)


async def test_ranked_order_paging_and_rebuild(env: tuple[Any, Hub, Settings]) -> None:
    client, hub, s = env
    reader, alice, bob = uid("reader"), uid("alice"), uid("bob")
    for author in (alice, bob):
        await follow(hub, "t1", reader, author, 0)
    h, path = auth(s, reader), f"/v1/feeds/popular/{reader}"
    assert (await read(client, path, h))["results"] == []  # cached: fan-out writes into it
    plan = [(alice, 0, {}), (bob, 10, {"likes": 3}), (alice, 20, {}), (bob, 30, {"likes": 15}),
            (alice, 40, {"shares": 1, "likes": "many"})]
    posted: dict[str, tuple[int, dict[str, Any]]] = {}
    for actor, minutes, extra in plan:
        aid = await post(hub, "t1", actor=actor, verb="post", object=f"o:{minutes}", time=at(minutes), extra=extra)
        posted[aid] = (minutes, extra)
    expected = expected_order(posted)
    assert expected != sorted(posted, reverse=True)  # the ranking is not recency here
    assert [a["id"] for a in (await read(client, path, h))["results"]] == expected
    for limit in (1, 2, 3):
        assert await read_all(client, path, h, limit) == expected, limit

    # Paging while new entries arrive, above and below the cursor: none repeated or skipped
    # (3 pages, so 3 arrive: 8 in all, within max_length, so none is trimmed meanwhile).
    seen: list[str] = []
    late: list[str] = []
    cursor = None
    for n in range(10):
        page = await read(client, f"{path}?limit=2" + (f"&id_lt={cursor}" if cursor else ""), h)
        seen += [a["id"] for a in page["results"]]
        extra = {"likes": 1000} if n % 2 else {}
        late.append(await post(hub, "t1", actor=bob, verb="post", object=f"late:{n}",
                               time=at(-600 if n % 2 == 0 else 50), extra=extra))
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in posted] == expected

    # Trimmed to the newest 8 (max_length), whatever their rank; then flushed and rebuilt.
    more = [await post(hub, "t1", actor=alice, verb="post", object=f"more:{n}", time=at(-900), extra={"likes": 9})
            for n in range(3)]
    held = set(await hub.feeds.flat_ids("t1", f"popular:{reader}", 100))
    assert held == set(sorted([*posted, *late, *more], reverse=True)[:8])
    top = await read(client, f"{path}?limit=25", h)
    assert {a["id"] for a in top["results"]} == held
    await hub.feeds.drop("t1", f"popular:{reader}")
    assert await read(client, f"{path}?limit=25", h) == top

    # The rank index keeps ids the feed trimmed until it holds twice max_length, then prunes.
    for n in range(12):
        await post(hub, "t1", actor=alice, verb="post", object=f"flood:{n}", time=at(n), extra={"likes": n % 4})
    index = hub.feeds.keys("t1").rank(f"popular:{reader}")
    assert await hub.redis.zcard(index) <= 2 * 8 + 1
    held = set(await hub.feeds.flat_ids("t1", f"popular:{reader}", 100))
    assert set(await hub.redis.zrange(index, 0, -1)) >= held
    page = [a["id"] for a in (await read(client, f"{path}?limit=25", h))["results"]]
    scores = {i: await hub.redis.zscore(index, i) for i in held}
    assert page == sorted(held, key=lambda i: (scores[i], i), reverse=True)


async def test_ranked_feed_merges_celebrities_and_drops_deleted(env: tuple[Any, Hub, Settings]) -> None:
    client, hub, s = env
    reader, alice, star = uid("reader"), uid("alice"), uid("star")
    await follow(hub, "t1", reader, alice, 0)
    for f in (reader, uid("x"), uid("y")):
        await follow(hub, "t1", f, star, 0)
    h, path = auth(s, reader), f"/v1/feeds/popular/{reader}"
    await read(client, path, h)
    posted: dict[str, tuple[int, dict[str, Any]]] = {}
    for minutes, likes in ((0, 0), (5, 0), (10, 0)):
        aid = await post(hub, "t1", actor=alice, verb="post", object=f"a:{minutes}", time=at(minutes),
                         extra={"likes": likes})
        posted[aid] = (minutes, {"likes": likes})
    for minutes, likes in ((2, 7), (12, 0)):  # plan only: a celebrity's activity is not fanned out
        (res,) = await intake.accept(hub, "t1", [parse_activity(
            {"actor": star, "verb": "post", "object": f"s:{minutes}", "time": at(minutes), "extra": {"likes": likes}},
            now=datetime.now(UTC))], batch=False)
        assert await fanout.plan(hub, "t1", str(res["id"])) == 0
        posted[str(res["id"])] = (minutes, {"likes": likes})
    expected = expected_order(posted)
    assert await read_all(client, path, h, 2) == expected
    assert (await read(client, path, h))["results"][0]["actor"] == star  # 7 likes: 3 half-lives ahead

    victim = expected[1]
    await intake.delete(hub, "t1", victim, None)
    await fanout.remove_everywhere(hub, "t1", victim)
    assert await read_all(client, path, h, 2) == [i for i in expected if i != victim]
    # The deleted activity's id still works as a cursor (a page that ended on it).
    page = await read(client, f"{path}?id_lt={victim}", h)
    assert [a["id"] for a in page["results"]] == expected[2:]


async def test_a_cursor_that_is_no_activity_is_400(env: tuple[Any, Hub, Settings]) -> None:
    client, _, s = env
    reader = uid("reader")
    r = await client.get(f"/v1/feeds/popular/{reader}?id_lt=01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=auth(s, reader))
    assert r.status == 400
    assert (await r.json())["error"]["field"] == "id_lt"
