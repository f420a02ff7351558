"""The websocket gateway against real Redis and Cassandra (docs/api.md, Websocket)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from typing import Any

import aiohttp
import pytest

import realtime
from hub.config import Settings
from hub.core import Hub
from hub.domain.tokens import issue_token
from hub.ops import fanout
from tests.conftest import sign, uid
from tests.helpers import post, token

ORIGIN = "http://127.0.0.1:8080"


def make_app(settings: Settings, **kw: Any):  # type: ignore[no-untyped-def]
    from web.app import create_app
    from web.keys import HUB

    app = create_app(settings)
    realtime.setup(app, settings, get_hub=lambda a: a[HUB], **kw)
    return app


@pytest.fixture
async def rt(settings: Settings, aiohttp_client):  # type: ignore[no-untyped-def]
    return await aiohttp_client(make_app(settings))


async def connect(client, settings: Settings, user: str, origin: str | None = ORIGIN):  # type: ignore[no-untyped-def]
    headers = {"Origin": origin} if origin else {}
    return await client.ws_connect(f"/v1/realtime?token={token(settings, user)}", headers=headers)


async def recv(ws, op: str | None = None, timeout: float = 5.0) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The next frame (skipping others than ``op`` when given)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if op is None or frame["op"] == op:
            return frame


async def subscribe(ws, feed: str, since: str | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    await ws.send_json({"op": "subscribe", "feed": feed, **({"since": since} if since else {})})
    frame = await recv(ws)
    assert frame["op"] == "subscribed", frame
    return frame


async def refused(client, path: str, origin: str | None = ORIGIN) -> tuple[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    if origin is not None:
        headers["Origin"] = origin
    r = await client.get(path, headers=headers)
    return r.status, await r.json()


async def test_handshake_refusals(rt, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    good = token(settings, bob)
    expired = issue_token("t1", settings.apps["t1"].key, bob, 1, now=int(time.time()) - 10)
    forged = issue_token("t1", settings.apps["t2"].key, bob, 600, now=int(time.time()))
    for path, code in (("/v1/realtime", "bad_token"), ("/v1/realtime?token=garbage", "bad_token"),
                       (f"/v1/realtime?token={forged}", "bad_token"), (f"/v1/realtime?token={expired}", "expired")):
        status, body = await refused(rt, path)
        assert (status, body["error"]["code"]) == (401, code), path
    for origin in ("https://evil.example", "http://127.0.0.1:8080.evil.com", "null", "http://127.0.0.1:8081",
                   "https://127.0.0.1:8080", "http://127.0.0.1:8080/x", "http://user@127.0.0.1:8080"):
        status, body = await refused(rt, f"/v1/realtime?token={good}", origin=origin)
        assert (status, body["error"]["code"]) == (403, "forbidden"), origin
    ws = await connect(rt, settings, bob)  # the allowed origin upgrades
    await ws.send_json({"op": "ping"})
    assert await recv(ws) == {"op": "pong"}
    await ws.close()


async def test_forbidden_subscription(rt, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    bob, eve = uid("bob"), uid("eve")
    ws = await connect(rt, settings, eve)
    await ws.send_json({"op": "subscribe", "feed": f"notification:{bob}"})
    frame = await recv(ws)
    assert frame["op"] == "error" and frame["code"] == "forbidden"
    await ws.send_json({"op": "subscribe", "feed": f"nosuchgroup:{eve}"})
    assert (await recv(ws))["op"] == "error"
    await ws.send_json({"op": "subscribe", "feed": f"notification:{eve}", "since": "not-a-cursor"})
    assert (await recv(ws))["code"] == "invalid_request"
    await ws.close()


async def test_entry_frames_live_and_resume_exactly_once(rt, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    feed = f"notification:{bob}"
    ws = await connect(rt, settings, bob)
    sub = await subscribe(ws, feed)
    assert sub["missed"] == [] and sub["complete"] is True and (sub["unseen"], sub["unread"]) == (0, 0)

    await post(hub, "t1", actor="alice", verb="like", object="photo:1", to=[feed])
    f1 = await recv(ws, "entry")
    assert f1["feed"] == feed and f1["entry"]["group"].startswith("like:photo:1:")
    assert f1["entry"]["actors"] == ["alice"] and (f1["unseen"], f1["unread"]) == (1, 1)
    await ws.close()

    # Offline: three more changes, one of them joining the first group.
    await post(hub, "t1", actor="carol", verb="like", object="photo:2", to=[feed])
    await post(hub, "t1", actor="dan", verb="comment", object="photo:3", to=[feed])
    await post(hub, "t1", actor="erin", verb="like", object="photo:1", to=[feed])

    ws = await connect(rt, settings, bob)
    sub = await subscribe(ws, feed, since=f1["cursor"])
    assert sub["complete"] is True
    assert [e["group"].rsplit(":", 1)[0] for e in sub["missed"]] == \
        ["like:photo:2", "comment:photo:3", "like:photo:1"]
    assert sub["missed"][-1]["actors"] == ["erin", "alice"]
    assert (sub["unseen"], sub["unread"]) == (3, 3)
    # Live again after the resume, with nothing doubled.
    await post(hub, "t1", actor="fay", verb="follow", object=f"user:{bob}", to=[feed])
    live = await recv(ws)
    assert live["op"] == "entry" and live["entry"]["verb"] == "follow"
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=0.3)
    # A resume from the subscribed frame's own cursor replays exactly the one live change.
    ws2 = await connect(rt, settings, bob)
    again = await subscribe(ws2, feed, since=sub["cursor"])
    assert [e["verb"] for e in again["missed"]] == ["follow"] and again["complete"] is True
    # Too far back (beyond the replay window / before the log): incomplete.
    ws3 = await connect(rt, settings, bob)
    old = await subscribe(ws3, feed, since="1-0")
    assert old["complete"] is False and old["missed"] == []
    for w in (ws, ws2, ws3):
        await w.close()


async def test_resume_flat_feed_in_order_with_changes_during_subscribe(rt, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    from hub.ops.follow import follow

    alice, bob = uid("alice"), uid("bob")
    feed = f"timeline:{bob}"
    await follow(hub, "t1", bob, alice, 0)
    ws = await connect(rt, settings, bob)
    await subscribe(ws, feed)
    first = await post(hub, "t1", actor=alice, verb="post", object="note:0")
    f = await recv(ws, "entry")
    assert f["entry"]["id"] == first
    await ws.close()
    offline = [await post(hub, "t1", actor=alice, verb="post", object=f"note:{i}") for i in range(1, 6)]

    # Changes keep arriving while the resume is being set up.
    ws = await connect(rt, settings, bob)
    more: list[str] = []

    async def keep_posting() -> None:
        for i in range(6, 12):
            more.append(await post(hub, "t1", actor=alice, verb="post", object=f"note:{i}"))

    poster = asyncio.create_task(keep_posting())
    sub = await subscribe(ws, feed, since=f["cursor"])
    await poster
    got = [e["id"] for e in sub["missed"]]
    cursors = []
    while len(got) < len(offline) + len(more):
        fr = await recv(ws, "entry")
        got.append(fr["entry"]["id"])
        cursors.append(fr["cursor"])
    assert got == offline + more  # every change once, in order
    assert cursors == sorted(cursors, key=lambda c: tuple(map(int, c.split("-"))))
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=0.3)
    await ws.close()


async def test_mark_over_http_syncs_counts_to_two_connections(rt, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    feed = f"notification:{bob}"
    tabs = [await connect(rt, settings, bob) for _ in range(2)]
    for ws in tabs:
        await subscribe(ws, feed)
    await post(hub, "t1", actor="alice", verb="like", object="photo:9", to=[feed])
    await post(hub, "t1", actor="carol", verb="comment", object="photo:9", to=[feed])
    entries = [await recv(ws, "entry") for ws in tabs for _ in range(2)]
    gid = entries[-1]["entry"]["id"]
    auth = {"Authorization": f"Bearer {token(settings, bob)}"}
    r = await rt.post(f"/v1/feeds/notification/{bob}/read", json={"ids": [gid]}, headers=auth)
    assert await r.json() == {"unseen": 1, "unread": 1}
    for ws in tabs:
        assert await recv(ws, "counts") == {"op": "counts", "feed": feed, "unseen": 1, "unread": 1}
    r = await rt.post(f"/v1/feeds/notification/{bob}/seen", json={"all": True}, headers=auth)
    for ws in tabs:
        assert await recv(ws, "counts") == {"op": "counts", "feed": feed, "unseen": 0, "unread": 1}
        await ws.close()


async def test_delete_frame(rt, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    ws = await connect(rt, settings, bob)
    await subscribe(ws, f"user:{bob}")
    await subscribe(ws, f"notification:{bob}")
    aid = await post(hub, "t1", actor=bob, verb="post", object="note:1", to=[f"notification:{bob}"])
    frames = [await recv(ws, "entry"), await recv(ws, "entry")]
    assert {f["feed"] for f in frames} == {f"user:{bob}", f"notification:{bob}"}
    gid = next(f["entry"]["id"] for f in frames if f["feed"].startswith("notification"))
    r = await rt.delete(f"/v1/apps/t1/activities/{aid}", headers=sign(settings.apps["t1"], b""))
    assert r.status == 202, await r.text()
    await fanout.remove_everywhere(hub, "t1", aid)  # the worker's job, inline
    dels = [await recv(ws, "deleted"), await recv(ws, "deleted")]
    by_feed = {d["feed"]: d for d in dels}
    assert by_feed[f"user:{bob}"]["ids"] == [aid]
    assert by_feed[f"notification:{bob}"]["ids"] == [gid]
    assert all(d["cursor"] for d in dels)
    await ws.close()


def _raw_ws_connect(port: int, path: str, origin: str) -> socket.socket:
    """A websocket client that sends its subscription and then never reads (tiny buffer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def _client_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked


async def test_slow_reader_is_dropped_without_delaying_others(settings: Settings, hub: Hub, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(make_app(settings, queue_size=4))
    gw = client.app[realtime.GATEWAY]
    bob = uid("bob")
    feed = f"notification:{bob}"
    fast = await connect(client, settings, bob)
    await subscribe(fast, feed)
    slow = await asyncio.to_thread(_raw_ws_connect, client.port, f"/v1/realtime?token={token(settings, bob)}", ORIGIN)
    slow.sendall(_client_frame(json.dumps({"op": "subscribe", "feed": feed})))
    for _ in range(100):
        if len(gw.subs.get(("t1", feed), ())) == 2:
            break
        await asyncio.sleep(0.02)
    assert len(gw.subs[("t1", feed)]) == 2
    big = "x" * 15000
    delays = []
    for i in range(40):
        t0 = time.monotonic()
        await post(hub, "t1", actor=f"a{i}", verb="like", object="photo:big", to=[feed], extra={"text": big})
        frame = await recv(fast, "entry")
        delays.append(time.monotonic() - t0)
        assert frame["entry"]["activity_count"] == i + 1
    assert gw.dropped == 1
    assert len(gw.subs[("t1", feed)]) == 1  # only the fast one is left
    assert max(delays) < 1.0, delays
    slow.close()
    await fast.close()


async def test_two_gateways_share_one_feed(settings: Settings, hub: Hub, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    a = await aiohttp_client(make_app(settings))
    b = await aiohttp_client(make_app(settings))
    bob = uid("bob")
    wa, wb = await connect(a, settings, bob), await connect(b, settings, bob)
    for ws in (wa, wb):
        await subscribe(ws, f"user:{bob}")
    aid = await post(hub, "t1", actor=bob, verb="post", object="note:1")
    for ws in (wa, wb):
        assert (await recv(ws, "entry"))["entry"]["id"] == aid
        await ws.close()


async def test_token_expiry_closes_with_4001(rt, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    t = issue_token("t1", settings.apps["t1"].key, bob, 2, now=int(time.time()))
    ws = await rt.ws_connect(f"/v1/realtime?token={t}", headers={"Origin": ORIGIN})
    msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == 4001
