"""A gateway process subscribes to a feed's channel while one of its sockets follows the
feed, and only then (realtime/dispatch.py, realtime/subscriber.py): checked on Redis
itself with ``PUBSUB SHARDNUMSUB``."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any
from urllib.parse import urlparse

import pytest

import realtime
import realtime.dispatch
from hub.config import Settings
from hub.core import Hub
from hub.storage.redis import Keys
from tests.conftest import uid
from tests.helpers import post, token
from tests.wire import TcpProxy


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


async def subscribe(ws: Any, feed: str) -> None:
    await ws.send_json({"op": "subscribe", "feed": feed})
    assert (await ws.receive_json(timeout=5))["op"] == "subscribed"


async def receive_entry(ws: Any, activity_id: str) -> None:
    frame = await ws.receive_json(timeout=5)
    assert frame["op"] == "entry" and frame["entry"]["id"] == activity_id, frame


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
    await subscribe(ws, feed)
    assert await subscribers(hub, channel) == 1  # confirmed before `subscribed` was sent
    # A second socket of the same process on the same feed: still one subscription.
    ws2 = await client.ws_connect(f"/v1/realtime?token={token(settings, bob)}")
    await subscribe(ws2, feed)
    assert await subscribers(hub, channel) == 1
    await ws2.close()
    await ws.send_json({"op": "unsubscribe", "feed": feed})
    assert (await ws.receive_json(timeout=5))["op"] == "unsubscribed"
    # Back within the linger: the subscription stayed, the frames flow.
    await subscribe(ws, feed)
    aid = await post(hub, "t1", actor=bob, verb="post", object="note:1")
    await receive_entry(ws, aid)
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


class Relay(TcpProxy):
    async def restore(self) -> None:
        """Accept connections again, on the same port."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)


async def test_a_lost_subscription_resumes_its_sockets_from_the_change_log(
    settings: Settings, hub: Hub, aiohttp_client: Any
) -> None:
    """The gateway reaches Redis through a relay the test cuts: a change made meanwhile
    (through the test's own connection) is not published to it, and comes from the log."""
    url = urlparse(settings.redis.url)
    relay = Relay(url.hostname or "127.0.0.1", url.port or 6379)
    port = await relay.start()
    cut_off = dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, url=f"redis://127.0.0.1:{port}/0"))
    client = await aiohttp_client(make_app(cut_off))
    try:
        bob = uid("bob")
        feed = f"user:{bob}"
        ws = await client.ws_connect(f"/v1/realtime?token={token(settings, bob)}")
        await subscribe(ws, feed)
        before = await post(hub, "t1", actor=bob, verb="post", object="note:1")
        await receive_entry(ws, before)
        await relay.cut()
        missed = await post(hub, "t1", actor=bob, verb="post", object="note:2")  # nobody hears it
        await asyncio.sleep(1.5)
        await relay.restore()
        again = await ws.receive_json(timeout=15)
        assert again["op"] == "subscribed" and again["complete"] is True, again
        assert [e["id"] for e in again["missed"]] == [missed]  # from the log, after the last cursor sent
        after = await post(hub, "t1", actor=bob, verb="post", object="note:3")
        await receive_entry(ws, after)
        await ws.close()
    finally:
        await relay.cut()
