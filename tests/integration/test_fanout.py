"""Intake and fan-out end to end: signed API, real Cassandra, real Redis, a real worker."""

from __future__ import annotations

import asyncio
import time

from hub.config import Settings
from hub.core import Hub
from hub.ops import rebuild
from tests.conftest import AppCaller, uid


async def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False


async def feed_ids(hub: Hub, app: str, group: str, user: str) -> list[str]:
    g = hub.settings.feeds[group]
    await rebuild.ensure_built(hub, app, g, user)
    if g.is_aggregated:
        return [i for st in await hub.feeds.groups(app, f"{group}:{user}", 1000) for i in st.members]
    return await hub.feeds.flat_ids(app, f"{group}:{user}", 1000)


async def test_post_fans_out_to_followers_and_targets(t1: AppCaller, hub: Hub, worker: None) -> None:
    alice, bob, carol = uid("alice"), uid("bob"), uid("carol")
    for f in (bob, carol):
        r = await t1.call("PUT", "/follows", {"follower": f, "followee": alice})
        assert r.status == 204, await r.text()
    # Followers' feeds are cached (as an active user's would be) before the post.
    for f in (bob, carol):
        assert await feed_ids(hub, "t1", "timeline", f) == []
        assert await feed_ids(hub, "t1", "timeline_aggregated", f) == []
    r = await t1.call("POST", "/activities", {"actor": alice, "verb": "like", "object": "photo:42",
                                              "to": [f"notification:{uid('dan')}"]})
    assert r.status == 202, await r.text()
    (res,) = (await r.json())["activities"]
    aid = res["id"]

    async def arrived() -> bool:
        return all([aid in await feed_ids(hub, "t1", "timeline", f) for f in (bob, carol)]) and \
            aid in await feed_ids(hub, "t1", "timeline_aggregated", carol)

    assert await wait_for(arrived)
    assert await feed_ids(hub, "t1", "user", alice) == [aid]
