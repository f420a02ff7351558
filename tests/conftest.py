"""Test set-up: real Redis and Cassandra, started (or reused) once per run.

Each run gets its own Cassandra keyspace and Redis key prefix, so runs never flush each
other's data; each test further picks its own user ids or app.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hub import services
from hub.config import AppSettings, Settings, load_settings
from hub.storage import redis as redis_storage
from hub.storage.cassandra import Cassandra
from hub.storage.schema import migrate

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = secrets.token_hex(4)


def make_app(app_id: str, **kw: object) -> AppSettings:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    return AppSettings(id=app_id, secret=secret, allowed_origins=("http://127.0.0.1:8080",), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    s = load_settings(ROOT / "config.toml", env={k: v for k, v in os.environ.items() if k.startswith("HUB_")})
    apps = {"demo": s.apps["demo"], "t1": make_app("t1"), "t2": make_app("t2"),
            "slow": make_app("slow", rate=2.0, burst=3)}
    return dataclasses.replace(
        s,
        redis=dataclasses.replace(s.redis, key_prefix=f"hubtest:{RUN_ID}"),
        cassandra=dataclasses.replace(s.cassandra, keyspace=f"hubtest_{RUN_ID}"),
        worker=dataclasses.replace(s.worker, job_timeout=5, poll_delay=0.02),
        apps=apps,
    )


@pytest.fixture(scope="session")
def running_services(base_settings: Settings) -> Iterator[list[services.ManagedService]]:
    started = services.start(base_settings, progress=print)
    yield started
    for svc in reversed(started):
        svc.stop()


@pytest.fixture(scope="session")
def settings(base_settings: Settings, running_services: list[services.ManagedService]) -> Iterator[Settings]:
    asyncio.run(migrate(base_settings.cassandra))
    yield base_settings
    asyncio.run(_drop_keyspace(base_settings))


async def _drop_keyspace(settings: Settings) -> None:
    db = await Cassandra.connect(settings.cassandra)
    try:
        await db.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}")
    finally:
        await db.close()
    r = redis_storage.connect(settings.redis)
    try:
        keys = [k async for k in r.scan_iter(match=f"{settings.redis.key_prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await r.delete(*keys[i : i + 500])
    finally:
        await r.aclose()


@pytest.fixture
async def cassandra(settings: Settings) -> AsyncIterator[Cassandra]:
    db = await Cassandra.connect(settings.cassandra)
    yield db
    await db.close()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[object]:
    r = redis_storage.connect(settings.redis)
    yield r
    await r.aclose()


def sign(app: AppSettings, body: bytes, msg_id: str | None = None, ts: int | None = None) -> dict[str, str]:
    import time

    from hub.domain.signing import sign as sign_body

    msg_id = msg_id or "msg_" + secrets.token_hex(8)
    ts = int(time.time()) if ts is None else ts
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": sign_body(app.key, msg_id, ts, body), "content-type": "application/json"}


class AppCaller:
    """Signed calls to the API as an app would make them."""

    def __init__(self, client: object, app: AppSettings) -> None:
        self.client = client
        self.app = app

    async def call(self, method: str, path: str, payload: object = None, **kw: object):  # type: ignore[no-untyped-def]
        import json

        body = b"" if payload is None else json.dumps(payload).encode()
        headers = sign(self.app, body)
        return await self.client.request(method, f"/v1/apps/{self.app.id}{path}", data=body, headers=headers, **kw)  # type: ignore[attr-defined]


@pytest.fixture
async def client(settings: Settings, aiohttp_client):  # type: ignore[no-untyped-def]
    from web.app import create_app

    return await aiohttp_client(create_app(settings))


@pytest.fixture
def t1(client, settings: Settings) -> AppCaller:  # type: ignore[no-untyped-def]
    return AppCaller(client, settings.apps["t1"])


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    """An arq worker (both queues) running in this event loop for the test."""
    from workers.main import run_workers

    stop = asyncio.Event()
    task = asyncio.create_task(run_workers(settings, stop=stop))
    yield
    stop.set()
    await asyncio.wait_for(task, 30)


def uid(prefix: str = "u") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[object]:
    """The stores, as a worker or the web app holds them."""
    from workers.context import close_hub, open_hub

    h = await open_hub(settings)
    yield h
    await close_hub(h)
