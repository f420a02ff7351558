"""The foundation against real services: schema, health endpoints, errors, a job."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from hub import services
from hub.config import Settings
from hub.queue import HIGH, connect_queue, queue_name
from hub.storage.cassandra import Cassandra
from hub.storage.schema import LATEST, MIGRATIONS, current_version, migrate
from web.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_migrate_is_idempotent(settings: Settings) -> None:
    ks = dataclasses.replace(settings.cassandra, keyspace=f"{settings.cassandra.keyspace}_m")
    first = await migrate(ks)
    db = await Cassandra.connect(ks)
    try:
        assert first == [m.version for m in MIGRATIONS]
        assert await migrate(ks) == []
        assert await current_version(db) == LATEST
        tables = await db.execute(
            "SELECT columnfamily_name FROM system.schema_columnfamilies WHERE keyspace_name = %s", (ks.keyspace,)
        )
        names = {t.columnfamily_name for t in tables}
        assert {"activities", "foreign_ids", "following", "followers", "feed_marks"} <= names
        assert "activity_by_foreign_id" not in names  # created by migration 2, dropped by 5
    finally:
        await db.execute(f"DROP KEYSPACE {ks.keyspace}")
        await db.close()


async def test_health_endpoints(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    r = await client.get("/readyz")
    assert r.status == 200, await r.text()
    assert (await r.json())["cassandra"] == "ok"
    m = await client.get("/metrics")
    assert m.status == 200
    assert "hub_http_requests_total" in await m.text()


async def test_errors_are_json(client: TestClient) -> None:
    r = await client.get("/no/such/thing")
    assert r.status == 404
    assert (await r.json())["error"]["code"] == "not_found"
    r = await client.post("/healthz")
    assert r.status == 405
    assert (await r.json())["error"]["code"] == "method_not_allowed"


async def test_readyz_follows_redis_down_and_back(settings: Settings, tmp_path: Path) -> None:
    """The app starts while its Redis is down, answers 503, and recovers by itself."""
    port = free_port()
    s = dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, url=f"redis://127.0.0.1:{port}/0"))
    async with TestClient(TestServer(create_app(s))) as client:
        r = await client.get("/readyz")
        assert r.status == 503
        body = await r.json()
        assert body["error"]["code"] == "unavailable"
        assert "redis" in body["error"]["message"]
        svc = await asyncio.to_thread(services.start_redis, "127.0.0.1", port, tmp_path, lambda _: None)
        assert svc is not None
        try:
            assert await _eventually_status(client, 200, timeout=10)
            await asyncio.to_thread(svc.stop)
            assert await _eventually_status(client, 503, timeout=5)
            svc = await asyncio.to_thread(services.start_redis, "127.0.0.1", port, tmp_path, lambda _: None)
            assert await _eventually_status(client, 200, timeout=10)
        finally:
            if svc is not None:
                await asyncio.to_thread(svc.stop)


async def test_readyz_follows_cassandra_down_and_back(settings: Settings, tmp_path: Path) -> None:
    """A second, real Cassandra that this test stops and starts under a running app."""
    port = free_port()
    start = lambda: services.start_cassandra(  # noqa: E731
        "127.0.0.1", port, tmp_path, settings.services.cache_dir, 384, lambda _: None
    )
    svc = await asyncio.to_thread(start)
    assert svc is not None
    s = dataclasses.replace(settings, cassandra=dataclasses.replace(settings.cassandra, port=port))
    try:
        async with TestClient(TestServer(create_app(s))) as client:
            assert (await client.get("/readyz")).status == 200
            await asyncio.to_thread(svc.stop)
            stopped = time.monotonic()
            assert await _eventually_status(client, 503, timeout=5)
            assert time.monotonic() - stopped < 5
            r = await client.get("/readyz")
            assert "cassandra" in (await r.json())["error"]["message"]
            svc = await asyncio.to_thread(start)
            assert svc is not None
            assert await _eventually_status(client, 200, timeout=30)
    finally:
        if svc is not None:
            await asyncio.to_thread(svc.stop)


async def _eventually_status(client: TestClient, status: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await client.get("/readyz")).status == status:
            return True
        await asyncio.sleep(0.2)
    return False


async def test_job_round_trip(settings: Settings, worker: None) -> None:
    queue = await connect_queue(settings)
    try:
        job = await queue.enqueue_job("ping", "hello", _queue_name=queue_name(settings.redis, HIGH))
        assert job is not None
        result = await job.result(timeout=10)
        assert result == {"pong": "hello", "try": 1}
    finally:
        await queue.aclose()
