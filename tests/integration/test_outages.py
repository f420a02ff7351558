"""Dependencies down (issue 18): with Redis or Cassandra gone every route answers 503
``unavailable`` in the contract's shape, never 500, and a websocket subscribe gets an
``unavailable`` error frame while the socket stays open. Redis is a private redis-server
killed by the test; Cassandra is reached through a relay the test cuts. The shared
services are untouched."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from hub.config import Settings
from tests.conftest import sign, uid
from tests.helpers import token
from tests.wire import HubTestServer, TcpProxy, full_app

ORIGIN = "http://127.0.0.1:8080"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Any) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = _free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield port, proc
    proc.kill()
    proc.wait()


@pytest.fixture
async def cassandra_relay(settings: Settings) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(settings.cassandra.hosts[0], settings.cassandra.port)
    await proxy.start()
    yield proxy
    await proxy.cut()


async def unavailable(resp: Any, what: str) -> None:
    text = await resp.text()
    assert resp.status == 503, f"{what}: {resp.status} {text}"
    assert json.loads(text)["error"]["code"] == "unavailable", f"{what}: {text}"


async def every_route_is_503(client: Any, settings: Settings, bob: str, actor: str) -> None:
    t1 = settings.apps["t1"]
    user = {"Authorization": f"Bearer {token(settings, bob)}"}
    for group in ("user", "timeline_aggregated", "notification"):
        await unavailable(await client.get(f"/v1/feeds/{group}/{bob}", headers=user), f"GET {group}")
        for kind in ("seen", "read"):
            for body in ({"ids": ["x"]}, {"all": True}, {"ids": []}):
                r = await client.post(f"/v1/feeds/{group}/{bob}/{kind}", json=body, headers=user)
                await unavailable(r, f"{kind} {group} {body}")
    signed = [
        ("POST", "/activities", {"actor": actor, "verb": "like", "object": "o"}),
        ("DELETE", "/activities/01HZZZZZZZZZZZZZZZZZZZZZZZ", None),
        ("DELETE", "/activities?foreign_id=f1", None),
        ("PUT", "/follows", {"follower": bob, "followee": actor}),
        ("DELETE", "/follows", {"follower": bob, "followee": actor}),
        ("GET", f"/users/{actor}/followers", None),
        ("GET", f"/users/{bob}/following", None),
        ("GET", f"/feeds/notification/{bob}", None),
    ]
    for method, path, payload in signed:
        body = b"" if payload is None else json.dumps(payload).encode()
        r = await client.request(method, f"/v1/apps/t1{path}", data=body, headers=sign(t1, body))
        await unavailable(r, f"{method} {path}")
    await unavailable(await client.get("/readyz"), "readyz")
    assert (await client.get("/healthz")).status == 200


async def socket_says_unavailable(ws: Any, feed: str) -> None:
    await ws.send_json({"op": "subscribe", "feed": feed})
    msg = await ws.receive(timeout=30)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    f = json.loads(msg.data)
    assert (f["op"], f["code"], f.get("feed")) == ("error", "unavailable", feed), f
    await ws.send_json({"op": "ping"})
    assert json.loads((await ws.receive(timeout=5)).data) == {"op": "pong"}


async def test_redis_down_is_503_everywhere(settings: Settings, aiohttp_client: Any, private_redis: Any) -> None:
    port, proc = private_redis
    s = dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, url=f"redis://127.0.0.1:{port}/0"))
    client = await aiohttp_client(HubTestServer(full_app(s)))
    bob, actor = uid("bob"), uid("actor")
    ws = await client.ws_connect(f"/v1/realtime?token={token(s, bob)}", headers={"Origin": ORIGIN})
    await ws.send_json({"op": "subscribe", "feed": f"notification:{bob}"})
    assert json.loads((await ws.receive(timeout=10)).data)["op"] == "subscribed"
    proc.kill()
    proc.wait()
    await every_route_is_503(client, s, bob, actor)
    await socket_says_unavailable(ws, f"timeline:{bob}")
    ws2 = await client.ws_connect(f"/v1/realtime?token={token(s, bob)}", headers={"Origin": ORIGIN})
    await socket_says_unavailable(ws2, f"user:{bob}")
    await ws.close()
    await ws2.close()


async def test_cassandra_down_is_503_everywhere(settings: Settings, aiohttp_client: Any,
                                                 cassandra_relay: TcpProxy) -> None:
    s = dataclasses.replace(settings, cassandra=dataclasses.replace(settings.cassandra, port=cassandra_relay.port))
    client = await aiohttp_client(HubTestServer(full_app(s)))
    bob, actor = uid("bob"), uid("actor")
    ws = await client.ws_connect(f"/v1/realtime?token={token(s, bob)}", headers={"Origin": ORIGIN})
    await cassandra_relay.cut()
    await asyncio.sleep(0.5)  # the driver sees its connections reset
    # Feeds not cached in Redis need Cassandra to be built: every route that needs it is 503.
    user = {"Authorization": f"Bearer {token(s, bob)}"}
    for group in ("user", "timeline_aggregated", "notification"):
        await unavailable(await client.get(f"/v1/feeds/{group}/{bob}", headers=user), f"GET {group}")
        await unavailable(await client.post(f"/v1/feeds/{group}/{bob}/seen", json={"all": True}, headers=user),
                          f"seen {group}")
    t1 = s.apps["t1"]
    for method, path, payload in (("POST", "/activities", {"actor": actor, "verb": "like", "object": "o"}),
                                  ("PUT", "/follows", {"follower": bob, "followee": actor}),
                                  ("GET", f"/users/{actor}/followers", None),
                                  ("DELETE", "/activities?foreign_id=f1", None)):
        body = b"" if payload is None else json.dumps(payload).encode()
        r = await client.request(method, f"/v1/apps/t1{path}", data=body, headers=sign(t1, body))
        await unavailable(r, f"{method} {path}")
    await unavailable(await client.get("/readyz"), "readyz")
    await socket_says_unavailable(ws, f"notification:{bob}")
    await ws.close()
