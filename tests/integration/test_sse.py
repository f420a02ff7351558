"""Server-sent events (realtime/sse.py): the websocket's frames as events, resumed by
``Last-Event-ID`` exactly as a websocket resubscribe, under the websocket's rules."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest

import realtime
from hub.config import Settings
from hub.core import Hub
from hub.domain.tokens import issue_token
from tests.conftest import uid
from tests.helpers import post, token
from web.app import create_app
from web.keys import HUB

ORIGIN = "http://127.0.0.1:8080"


@pytest.fixture
async def rt(settings: Settings, aiohttp_client):  # type: ignore[no-untyped-def]
    app = create_app(settings)
    realtime.setup(app, settings, get_hub=lambda a: a[HUB], sse_heartbeat=0.5)
    return await aiohttp_client(app)


async def open_sse(client, settings: Settings, user: str, feed: str, last: str | None = None,  # type: ignore[no-untyped-def]
                   tok: str | None = None):
    headers = {"Origin": ORIGIN, **({"Last-Event-ID": last} if last else {})}
    r = await client.get(f"/v1/realtime/sse?token={tok or token(settings, user)}&feed={feed}", headers=headers)
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    return r


async def next_event(r, op: str | None = None, timeout: float = 5.0) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The next event (comments skipped; other ops too when ``op`` is given):
    ``{"event", "id"?, "data"}``."""
    deadline = time.monotonic() + timeout
    while True:
        ev: dict[str, Any] = {}
        while True:
            line = await r.content.readline()
            assert time.monotonic() < deadline, "no event in time"
            if not line:
                return {"event": None}
            text = line.decode().rstrip("\n")
            if text == "":
                if ev:
                    break
                continue
            if text.startswith(":"):
                ev.setdefault("comments", 0)
                continue
            name, _, value = text.partition(": ")
            ev[name] = json.loads(value) if name == "data" else value
        if "event" not in ev:
            continue  # a heartbeat
        if op is None or ev["event"] == op:
            return ev


async def test_frames_arrive_and_last_event_id_resumes_exactly_once(rt, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    feed = f"notification:{bob}"
    r = await open_sse(rt, settings, bob, feed)
    sub = await next_event(r)
    assert sub["event"] == "subscribed" and sub["data"]["feed"] == feed and sub["data"]["complete"] is True
    await post(hub, "t1", actor="alice", verb="like", object="p1", to=[feed])
    ev = await next_event(r, "entry")
    assert ev["id"] == ev["data"]["cursor"] and ev["data"]["entry"]["group"].startswith("like:p1")
    last = ev["id"]
    r.close()

    # Offline: p2 once, p3 twice, p1 again; each changed group once on resume, newest change order.
    for actor, obj in (("alice", "p2"), ("alice", "p3"), ("carol", "p3"), ("carol", "p1")):
        await post(hub, "t1", actor=actor, verb="like", object=obj, to=[feed])
    r = await open_sse(rt, settings, bob, feed, last=last)
    sub = await next_event(r)
    assert sub["event"] == "subscribed" and sub["data"]["complete"] is True
    assert [e["group"].split(":")[1] for e in sub["data"]["missed"]] == ["p2", "p3", "p1"]
    assert sub["id"] == sub["data"]["cursor"] != last
    assert (sub["data"]["unseen"], sub["data"]["unread"]) == (3, 3)
    await post(hub, "t1", actor="dave", verb="like", object="p4", to=[feed])
    ev = await next_event(r)
    assert ev["event"] == "entry" and ev["data"]["entry"]["group"].startswith("like:p4")
    assert ev["id"] > sub["id"]
    r.close()

    # ?since= resumes the same way.
    q = f"/v1/realtime/sse?token={token(settings, bob)}&feed={feed}&since={sub['id']}"
    r = await rt.get(q, headers={"Origin": ORIGIN})
    sub2 = await next_event(r)
    assert [e["group"].split(":")[1] for e in sub2["data"]["missed"]] == ["p4"]
    r.close()


async def test_refusals(rt, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    bob, eve = uid("bob"), uid("eve")
    feed = f"notification:{bob}"

    async def status(path: str, origin: str = ORIGIN) -> tuple[int, str]:
        r = await rt.get(path, headers={"Origin": origin})
        return r.status, (await r.json())["error"]["code"]

    assert await status(f"/v1/realtime/sse?token=nope&feed={feed}") == (401, "bad_token")
    expired = issue_token("t1", settings.apps["t1"].key, bob, 60, now=int(time.time()) - 3600)
    assert await status(f"/v1/realtime/sse?token={expired}&feed={feed}") == (401, "expired")
    assert await status(f"/v1/realtime/sse?token={token(settings, eve)}&feed={feed}") == (403, "forbidden")
    assert await status(f"/v1/realtime/sse?token={token(settings, bob)}&feed={feed}",
                        "http://evil.example") == (403, "forbidden")
    assert await status(f"/v1/realtime/sse?token={token(settings, bob)}") == (400, "invalid_request")
    assert await status(f"/v1/realtime/sse?token={token(settings, bob)}&feed={feed}&since=x") == (400, "invalid_request")


async def test_archived_frames_reach_every_connection_of_the_user(rt, settings: Settings, hub: Hub) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    feed = f"notification:{bob}"
    await post(hub, "t1", actor="alice", verb="like", object="p1", to=[feed])
    await post(hub, "t1", actor="alice", verb="like", object="p2", to=[feed])
    r = await open_sse(rt, settings, bob, feed)
    assert (await next_event(r))["event"] == "subscribed"
    ws = await rt.ws_connect(f"/v1/realtime?token={token(settings, bob)}", headers={"Origin": ORIGIN})
    await ws.send_json({"op": "subscribe", "feed": feed})
    assert (await ws.receive_json(timeout=5))["op"] == "subscribed"
    auth = {"Authorization": f"Bearer {token(settings, bob)}"}
    gid = (await (await rt.get(f"/v1/feeds/notification/{bob}", headers=auth)).json())["results"][0]["id"]

    a = await rt.post(f"/v1/feeds/notification/{bob}/archive", json={"ids": [gid]}, headers=auth)
    assert await a.json() == {"unseen": 1, "unread": 1}
    want = {"op": "archived", "feed": feed, "ids": [gid], "unseen": 1, "unread": 1}
    ev = await next_event(r, "archived")
    assert ev["data"] == want and "id" not in ev
    assert await ws.receive_json(timeout=5) == want
    await rt.post(f"/v1/feeds/notification/{bob}/unarchive", json={"all": True}, headers=auth)
    want = {"op": "unarchived", "feed": feed, "ids": [gid], "unseen": 2, "unread": 2}
    assert (await next_event(r, "unarchived"))["data"] == want
    assert await ws.receive_json(timeout=5) == want
    await ws.close()
    r.close()


async def test_heartbeats_and_close_at_token_expiry(rt, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    bob = uid("bob")
    tok = issue_token("t1", settings.apps["t1"].key, bob, 2, now=int(time.time()))
    r = await open_sse(rt, settings, bob, f"notification:{bob}", tok=tok)
    assert (await next_event(r))["event"] == "subscribed"
    line = await r.content.readline()
    while line == b"\n":
        line = await r.content.readline()
    assert line == b": ping\n"  # heartbeat every 0.5 s here
    ev = await next_event(r, "close", timeout=5)
    assert ev["data"] == {"op": "close", "code": 4001, "reason": "token expired"}
    assert (await next_event(r, timeout=3))["event"] is None  # the stream ended


def _raw_sse_connect(port: int, path: str) -> socket.socket:
    """An SSE client that reads the response head and then never reads again (tiny buffer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {ORIGIN}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return s


async def test_a_client_that_does_not_read_is_dropped_without_delaying_others(settings: Settings, hub: Hub,  # type: ignore[no-untyped-def]
                                                                               aiohttp_client) -> None:
    app = create_app(settings)
    realtime.setup(app, settings, get_hub=lambda a: a[HUB], queue_size=4)
    client = await aiohttp_client(app)
    gw = client.app[realtime.GATEWAY]
    bob = uid("bob")
    feed = f"notification:{bob}"
    fast = await open_sse(client, settings, bob, feed)
    assert (await next_event(fast))["event"] == "subscribed"
    path = f"/v1/realtime/sse?token={token(settings, bob)}&feed={feed}"
    slow = await asyncio.to_thread(_raw_sse_connect, client.port, path)
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
        ev = await next_event(fast, "entry")
        delays.append(time.monotonic() - t0)
        assert ev["data"]["entry"]["activity_count"] == i + 1
    assert gw.dropped == 1
    assert len(gw.subs[("t1", feed)]) == 1  # only the reading one is left
    assert max(delays) < 1.0, delays
    slow.close()
    fast.close()


async def test_shutdown_ends_open_streams_at_once(settings: Settings, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    # A long heartbeat, so only the shutdown can end the stream; before, the gateway's stop
    # closed the stream but the handler looped on until aiohttp's 60 s shutdown timeout.
    app = create_app(settings)
    realtime.setup(app, settings, get_hub=lambda a: a[HUB], sse_heartbeat=30.0)
    client = await aiohttp_client(app)
    bob = uid("bob")
    r = await open_sse(client, settings, bob, f"notification:{bob}")
    assert (await next_event(r, "subscribed"))["event"] == "subscribed"
    started = time.monotonic()
    await client.server.close()
    assert time.monotonic() - started < 5.0
    assert (await next_event(r, "close"))["data"]["code"] == 1001
