"""Operations endpoints: liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from hub.errors import Unavailable
from hub.queue import PRIORITIES, queue_name
from hub.storage.redis import REDIS_DOWN
from web.keys import CASSANDRA, METRICS, QUEUE, REDIS, SETTINGS

# /readyz must answer within a load balancer's patience even when a dependency hangs.
CHECK_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    async def redis_ok(name: str, client: Any) -> str | None:
        try:
            await asyncio.wait_for(client.ping(), CHECK_TIMEOUT)
            return None
        except (asyncio.TimeoutError, *REDIS_DOWN) as e:
            return f"{name}: {type(e).__name__}: {e}"

    async def cassandra_ok() -> str | None:
        try:
            await asyncio.wait_for(
                request.app[CASSANDRA].execute("SELECT release_version FROM system.local"), CHECK_TIMEOUT
            )
            return None
        except (asyncio.TimeoutError, Unavailable) as e:
            return f"cassandra: {type(e).__name__}: {e}"

    # The queue Redis ([queue] url) when it is not the main one: without it nothing is fanned out.
    apart = request.app[SETTINGS].queue_apart
    checks = [redis_ok("redis", request.app[REDIS]), cassandra_ok()]
    if apart:
        checks.append(redis_ok("queue", request.app[QUEUE]))
    failures = [f for f in await asyncio.gather(*checks) if f]
    if failures:
        names = ", ".join(f.split(":", 1)[0] for f in failures)
        return web.json_response(
            {"error": {"code": "unavailable", "message": f"{names} not answering: " + "; ".join(failures)}},
            status=503,
        )
    return web.json_response({"status": "ready", "redis": "ok", "cassandra": "ok", **({"queue": "ok"} if apart else {})})


async def metrics(request: web.Request) -> web.Response:
    """Every metric of this process; the queue depths are read from Redis now."""
    metrics = request.app[METRICS]
    settings = request.app[SETTINGS].redis
    # The queues live on the queue Redis ([queue] url), which may not be the feeds' Redis.
    await metrics.refresh_queue_depth(request.app[QUEUE], [(p, queue_name(settings, p)) for p in PRIORITIES])
    body = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
