"""A short outage is two log lines, not one per request or attempt (issue 18): the realtime
dispatcher losing Redis (it resubscribes every second), and the web app keeping answers
while Cassandra is away (every signed call keeps one). Redis and Cassandra are reached
through relays the tests cut and restore; the shared services are untouched."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import pytest

from hub.config import Settings
from hub.core import Hub
from hub.storage.changes import ChangeLog
from realtime.dispatch import Dispatcher
from realtime.frames import FeedView
from tests.conftest import make_app, sign, uid
from tests.wire import HubTestServer, TcpProxy, full_app
from web.keys import SIGNED


class Relay(TcpProxy):
    async def restore(self) -> None:
        """Accept connections again, on the same port (the outage is over)."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= logging.INFO]


async def test_the_dispatcher_logs_a_redis_outage_in_two_lines(
    settings: Settings, hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    url = urlparse(settings.redis.url)
    relay = Relay(url.hostname or "127.0.0.1", url.port or 6379)
    port = await relay.start()
    dispatcher = Dispatcher(f"redis://127.0.0.1:{port}/0", ChangeLog(hub.redis, settings.redis.key_prefix),
                            FeedView(hub))
    caplog.set_level(logging.INFO, logger="realtime.dispatch")
    await dispatcher.start()
    try:
        await relay.cut()
        await asyncio.sleep(4.5)  # about four resubscribe attempts, one a second

        async def down() -> bool:
            return dispatcher.outage.down

        assert await until(down, 5)
        await relay.restore()

        async def back() -> bool:
            return not dispatcher.outage.down

        assert await until(back, 10), "the dispatcher did not resubscribe"
    finally:
        await dispatcher.stop()
        await relay.cut()
    logged = lines(caplog, "realtime.dispatch")
    assert len(logged) == 2, logged
    assert "is unavailable" in logged[0] and "is back" in logged[1], logged


async def test_answers_not_kept_while_cassandra_is_away_are_two_lines(
    settings: Settings, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    relay = Relay(settings.cassandra.hosts[0], settings.cassandra.port)
    await relay.start()
    # An app of its own: an app with answers on record while Redis may have lost some
    # (another test deletes the run's keys) is checked in Cassandra, which is cut here.
    app_id = uid("ol").replace("-", "")
    s = dataclasses.replace(settings, apps={**settings.apps, app_id: make_app(app_id)}, cassandra=dataclasses.replace(
        settings.cassandra, hosts=("127.0.0.1",), port=relay.port, request_timeout=2.0))
    client = await aiohttp_client(HubTestServer(full_app(s)))
    t1, bob = s.apps[app_id], uid("bob")
    caplog.set_level(logging.INFO, logger="web")

    async def read() -> int:  # a signed call that Redis alone answers once the feed is cached
        r = await client.get(f"/v1/apps/{app_id}/feeds/timeline/{bob}", headers=sign(t1, b""))
        return r.status

    try:
        assert await read() == 200  # built (from Cassandra) and cached
        await relay.cut()
        await asyncio.sleep(0.5)  # the driver sees its connections reset
        statuses = [await read() for _ in range(10)]
        assert statuses == [200] * 10  # answered from Redis; only the answer's copy is not kept
        await relay.restore()

        async def kept() -> bool:  # the driver reconnects, and a call keeps its answer again
            return await read() == 200 and not client.app[SIGNED].answers_down.down

        assert await until(kept, 30), "answers never kept again"
    finally:
        await relay.cut()
    logged = [m for m in lines(caplog, "web.gate") + lines(caplog, "web.signed") if "answer" in m]
    assert len(logged) == 2, logged
    assert "is unavailable" in logged[0] and "is back" in logged[1], logged
