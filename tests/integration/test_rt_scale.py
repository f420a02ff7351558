"""Realtime that scales with gateways (issue 21): two ``hub serve`` processes, 500 sockets
each on feeds of their own; each process receives and decodes only the changes of its own
sockets' feeds (``hub_realtime_messages_total`` on its /metrics), and every socket gets
the frame of its feed."""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.config import Settings
from hub.core import Hub
from tests.conftest import uid
from tests.faulthub import OwnHub
from tests.helpers import post, token

SOCKETS = 500  # per gateway
PER_POST = 50  # feeds a post addresses (``to``)


@pytest.fixture
def gateways(settings: Settings) -> Iterator[tuple[OwnHub, OwnHub]]:
    pair = (OwnHub(settings, Path(tempfile.mkdtemp(prefix="hub-rt-a-"))),
            OwnHub(settings, Path(tempfile.mkdtemp(prefix="hub-rt-b-"))))
    try:
        for own in pair:
            own.start("serve")
        yield pair
    finally:
        for own in pair:
            own.stop()


async def metric(session: aiohttp.ClientSession, own: OwnHub, name: str) -> float:
    async with session.get(own.url + "/metrics") as r:
        text = await r.text()
    m = re.search(rf"(?m)^{re.escape(name)} ([0-9.e+]+)$", text)
    return float(m.group(1)) if m else 0.0


async def open_sockets(session: aiohttp.ClientSession, settings: Settings, own: OwnHub,
                       users: list[str]) -> list[aiohttp.ClientWebSocketResponse]:
    """One socket per user, subscribed to the user's notification feed."""
    limit = asyncio.Semaphore(50)

    async def one(user: str) -> aiohttp.ClientWebSocketResponse:
        async with limit:
            ws = await session.ws_connect(f"{own.url}/v1/realtime?token={token(settings, user)}")
            await ws.send_json({"op": "subscribe", "feed": f"notification:{user}"})
            frame = json.loads((await ws.receive(timeout=30)).data)
            assert frame["op"] == "subscribed", frame
            return ws

    return list(await asyncio.gather(*(one(u) for u in users)))


async def entry_of(ws: aiohttp.ClientWebSocketResponse, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        frame: dict[str, Any] = json.loads((await ws.receive(timeout=max(0.01, deadline - time.monotonic()))).data)
        if frame["op"] == "entry":
            return frame


async def test_each_gateway_decodes_only_its_own_sockets_changes(
    settings: Settings, hub: Hub, gateways: tuple[OwnHub, OwnHub]
) -> None:
    await asyncio.gather(*(own.wait_ready() for own in gateways))
    base = uid("rt")
    users = [[f"{base}-{g}{i}" for i in range(SOCKETS)] for g in "ab"]
    # Changes: every feed of the first gateway's sockets once, 200 of the second's once.
    targets = [users[0], users[1][:200]]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = [await open_sockets(session, settings, own, users[g]) for g, own in enumerate(gateways)]
        before = [await metric(session, own, "hub_realtime_messages_total") for own in gateways]
        for g in (0, 1):
            for start in range(0, len(targets[g]), PER_POST):
                chunk = targets[g][start:start + PER_POST]
                await post(hub, "t1", actor=uid("poster"), verb="invite", object=f"team:{g}-{start}",
                           to=[f"notification:{u}" for u in chunk])
        for g in (0, 1):
            frames = await asyncio.gather(*(entry_of(ws) for ws in sockets[g][:len(targets[g])]))
            assert [f["feed"] for f in frames] == [f"notification:{u}" for u in targets[g]]
        await asyncio.sleep(0.5)  # anything more would have arrived by now
        decoded = [await metric(session, own, "hub_realtime_messages_total") - before[g]
                   for g, own in enumerate(gateways)]
        # Each process decoded exactly the changes of its own sockets' feeds: none of the other's.
        assert decoded == [len(targets[0]), len(targets[1])], decoded
        for ws in sockets[1][len(targets[1]):len(targets[1]) + 20]:  # sockets without a change: nothing
            with pytest.raises(asyncio.TimeoutError):
                await ws.receive(timeout=0.01)
        for g in (0, 1):
            await asyncio.gather(*(ws.close() for ws in sockets[g]))
