"""The rendered first page of aggregated feeds (page cache) and batched hot reads.

Whatever happens to a feed, a read served from the page cache must give the same bytes
as one rendered afresh; concurrent reads (sent to Redis as one pipeline) the same bytes
as reads made one at a time.
"""

from __future__ import annotations

import asyncio

from hub.config import Settings
from hub.core import Hub
from hub.ops import fanout, reads
from tests.conftest import uid
from tests.helpers import post, token, wait_for


async def _raw(client, settings: Settings, user: str, query: str = "limit=25") -> bytes:  # type: ignore[no-untyped-def]
    r = await client.get(f"/v1/feeds/notification/{user}?{query}",
                         headers={"Authorization": f"Bearer {token(settings, user)}"})
    assert r.status == 200, await r.text()
    return bytes(await r.read())


async def _page_kept(hub: Hub, page_key: str) -> str | None:
    """The kept page, once a store in flight has landed (None when there is none)."""
    async def landed() -> bool:
        return not (await hub.redis.get(page_key) or "?").startswith("?")

    await wait_for(landed, timeout=1.0)
    page: str | None = await hub.redis.get(page_key)
    return page if page and not page.startswith("?") else None


async def _same_as_fresh(client, settings: Settings, hub: Hub, user: str, query: str = "limit=25") -> bytes:  # type: ignore[no-untyped-def]
    """Read (rendered or cached), read again (cached), then render afresh: all equal."""
    page_key = hub.feeds.keys("t1").agg_page(f"notification:{user}")
    first = await _raw(client, settings, user, query)
    await _page_kept(hub, page_key)  # stored in the background
    cached = await _raw(client, settings, user, query)
    kept = await _page_kept(hub, page_key)
    await hub.redis.delete(page_key)
    fresh = await _raw(client, settings, user, query)
    assert first == cached == fresh
    return kept  # type: ignore[no-any-return]


async def test_cached_page_follows_every_change(client, t1, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    to = [f"notification:{bob}"]
    ids = []
    for i in range(40):
        ids.append(await post(hub, "t1", actor=f"a{i % 7}", verb=("like", "comment", "share")[i % 3],
                              object=f'photo:"{i % 9}"\\é', to=to))
    kept = await _same_as_fresh(client, settings, hub, bob)
    assert kept is not None and kept.startswith("25\t")  # first pages are kept
    for query in ("limit=7", "limit=1", "limit=100"):
        await _same_as_fresh(client, settings, hub, bob, query)
    # A page further down is never kept, and its cursor still works.
    nxt = (await (await client.get(f"/v1/feeds/notification/{bob}?limit=5",
                                   headers={"Authorization": f"Bearer {token(settings, bob)}"})).json())["next"]
    assert nxt
    page_key = hub.feeds.keys("t1").agg_page(f"notification:{bob}")
    await _raw(client, settings, bob, f"limit=5&id_lt={nxt}")
    assert (await _page_kept(hub, page_key) or "").startswith("5\t")

    # A new activity reopens a group: the kept page is dropped, not served.
    await _raw(client, settings, bob)
    assert await _page_kept(hub, page_key)
    await post(hub, "t1", actor="late", verb="like", object='photo:"3"\\é', to=to)
    assert await hub.redis.get(page_key) is None
    await _same_as_fresh(client, settings, hub, bob)

    # Marks are applied at every read, to the kept page too.
    groups = (await (await client.get(f"/v1/feeds/notification/{bob}",
                                      headers={"Authorization": f"Bearer {token(settings, bob)}"})).json())["results"]
    await reads.mark(hub, "t1", settings.feeds["notification"], bob, "read", [groups[2]["id"]])
    await _same_as_fresh(client, settings, hub, bob)
    await reads.mark(hub, "t1", settings.feeds["notification"], bob, "seen", None)
    await _same_as_fresh(client, settings, hub, bob)

    # A deleted activity's body goes at once; its removal from feeds follows in a job.
    await _raw(client, settings, bob)
    assert (await t1.call("DELETE", f"/activities/{ids[-1]}")).status == 202
    await _same_as_fresh(client, settings, hub, bob)
    assert ids[-1].encode() not in await _raw(client, settings, bob)
    await fanout.remove_everywhere(hub, "t1", ids[-1])
    await _same_as_fresh(client, settings, hub, bob)

    # The feed lost from Redis: rebuilt, and the same bytes again.
    before = await _raw(client, settings, bob)
    await hub.feeds.drop("t1", f"notification:{bob}")
    assert await _raw(client, settings, bob) == before


async def test_concurrent_reads_equal_reads_one_at_a_time(client, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    users = [uid("reader") for _ in range(6)]
    for n, u in enumerate(users):
        for i in range(3 + n * 4):
            await post(hub, "t1", actor=f"b{i % 4}", verb="like", object=f"photo:{i % 5}", to=[f"notification:{u}"])
    queries = [(u, q) for u in users for q in ("limit=25", "limit=3", "limit=1")] * 4
    together = await asyncio.gather(*(_raw(client, settings, u, q) for u, q in queries))
    for (u, q), got in zip(queries, together):
        await hub.redis.delete(hub.feeds.keys("t1").agg_page(f"notification:{u}"))
        assert got == await _raw(client, settings, u, q)
