"""``hub worker --metrics-port N``: the worker's metrics over HTTP (``GET /metrics``).

A tiny aiohttp app on its own port, serving the worker's own registry (hub/metrics.py);
the queue depths are read from Redis on each scrape, with a client of its own so the
endpoint answers while the worker still waits for Cassandra.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from hub.config import Settings
from hub.metrics import HubMetrics
from hub.queue import PRIORITIES, connect_queue, queue_name


@asynccontextmanager
async def serve_metrics(settings: Settings, metrics: HubMetrics, port: int) -> AsyncIterator[None]:
    """Serve ``GET /metrics`` on ``server.host:port`` while the block runs (the same interface
    as ``hub serve``, so a worker exposes nothing a server of the same config would not)."""
    redis = await connect_queue(settings)  # the queues' Redis ([queue] url)
    queues = [(p, queue_name(settings.redis, p)) for p in PRIORITIES]

    async def scrape(request: web.Request) -> web.Response:
        await metrics.refresh_queue_depth(redis, queues)
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.server.host, port).start()
        yield
    finally:
        await runner.cleanup()
        await redis.aclose()
