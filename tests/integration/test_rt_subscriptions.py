"""A gateway process subscribes to a feed's channel while one of its sockets follows the
feed, and only then (realtime/dispatch.py, realtime/subscriber.py): checked on Redis
itself with ``PUBSUB SHARDNUMSUB``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import realtime
import realtime.dispatch
from hub.config import Settings
from hub.core import Hub
from hub.storage.redis import Keys
from tests.conftest import uid
from tests.helpers import post, token


def make_app(settings: Settings) -> Any:
    from web.app import create_app
    from web.keys import HUB

    app = create_app(settings)
    realtime.setup(app, settings, get_hub=lambda a: a[HUB])
    return app


async def subscribers(hub: Hub, channel: str) -> int:
    _, n = await hub.redis.execute_command("PUBSUB", "SHARDNUMSUB", channel)  # type: ignore[no-untyped-call]
    return int(n)


async def until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_a_channel_is_subscribed_while_a_socket_follows_and_a_while_after(
    settings: Settings, hub: Hub, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realtime.dispatch, "LINGER", 1.0)
    client = await aiohttp_client(make_app(settings))
    bob = uid("bob")
    feed = f"user:{bob}"
    channel = Keys(settings.redis.key_prefix, "t1").channel(feed)
    assert await subscribers(hub, channel) == 0
    ws = await client.ws_connect(f"/v1/realtime?token={token(settings, bob)}")
    await ws.send_json({"op": "subscribe", "feed": feed})
    assert (await ws.receive_json(timeout=5))["op"] == "subscribed"
    assert await subscribers(hub, channel) == 1  # confirmed before `subscribed` was sent
    # A second socket of the same process on the same feed: still one subscription.
    ws2 = await client.ws_connect(f"/v1/realtime?token={token(settings, bob)}")
    await ws2.send_json({"op": "subscribe", "feed": feed})
    assert (await ws2.receive_json(timeout=5))["op"] == "subscribed"
    assert await subscribers(hub, channel) == 1
    await ws2.close()
    await ws.send_json({"op": "unsubscribe", "feed": feed})
    assert (await ws.receive_json(timeout=5))["op"] == "unsubscribed"
    # Back within the linger: the subscription stayed, the frames flow.
    await ws.send_json({"op": "subscribe", "feed": feed})
    assert (await ws.receive_json(timeout=5))["op"] == "subscribed"
    aid = await post(hub, "t1", actor=bob, verb="post", object="note:1")
    frame = await ws.receive_json(timeout=5)
    assert frame["op"] == "entry" and frame["entry"]["id"] == aid
    await ws.close()

    async def gone() -> bool:
        return await subscribers(hub, channel) == 0

    assert await until(gone, 5), "the channel stayed subscribed after its last socket left"


async def test_many_subscribes_at_once_are_each_confirmed(settings: Settings, hub: Hub, aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app(settings))
    bob = uid("bob")
    ws = await client.ws_connect(f"/v1/realtime?token={token(settings, bob)}")
    feeds = [f"{g}:{bob}" for g in ("user", "timeline", "timeline_aggregated", "notification")]
    for f in feeds:  # sent together: their SSUBSCRIBEs leave in one write
        await ws.send_json({"op": "subscribe", "feed": f})
    got = [await ws.receive_json(timeout=5) for _ in feeds]
    assert sorted(f["feed"] for f in got if f["op"] == "subscribed") == sorted(feeds)
    k = Keys(settings.redis.key_prefix, "t1")
    assert [await subscribers(hub, k.channel(f)) for f in feeds] == [1] * len(feeds)
    await ws.close()
