"""The aiohttp application: HTTP API, websocket gateway and pages in one app.

``create_app(settings)`` builds it; Redis, Cassandra and the job queue are opened and
closed in ``cleanup_ctx`` so tests and ``hub serve`` share one code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from hub.config import Settings
from hub.core import Hub
from hub.ops.intake import Intake
from hub.queue import connect_queue
from hub.storage import redis as redis_storage
from hub.storage.binding import bind_unless_down
from hub.storage.cassandra import Cassandra
from web.cors import cors_middleware
from web.errors import BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT, errors_middleware
from web.gate import SignedScripts
from web.keys import CASSANDRA, HUB, INTAKE, METRICS, QUEUE, REDIS, SETTINGS, SIGNED, VERIFIED_TOKENS
from web.metrics import Metrics
from web.routes import setup_routes
from web.tokencache import VerifiedTokens

# Bodies above this are refused before they are read (docs/api.md, Errors: 413 too_large).
MAX_BODY = 1024 * 1024
LINGERING_TIME = 2.0


def create_app(settings: Settings, *, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> web.Application:
    """``body_timeout``: seconds a request body may take to arrive (web/errors.py)."""
    # lingering_time: after an answer given before the body was all read (413, a body timed
    # out), aiohttp reads and drops the rest for this long before closing (default 10 s), so
    # a client sending its body anyway still gets the answer instead of a reset.
    app = web.Application(middlewares=[cors_middleware, errors_middleware], client_max_size=MAX_BODY,
                          handler_args={"lingering_time": LINGERING_TIME})
    app[SETTINGS] = settings
    app[BODY_TIMEOUT] = body_timeout
    app[METRICS] = Metrics()
    app[VERIFIED_TOKENS] = VerifiedTokens(settings)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_cassandra)
    app.cleanup_ctx.append(_hub)
    setup_routes(app)
    return app


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[REDIS] = redis_storage.connect(settings.redis)
    app[SIGNED] = SignedScripts(app[REDIS])
    app[QUEUE] = await connect_queue(settings)
    yield
    await app[SIGNED].close()
    await app[QUEUE].aclose()
    await app[REDIS].aclose()


async def _cassandra(app: web.Application) -> AsyncIterator[None]:
    app[CASSANDRA] = await Cassandra.connect(app[SETTINGS].cassandra)
    yield
    await app[CASSANDRA].close()


async def _hub(app: web.Application) -> AsyncIterator[None]:
    # Last in cleanup_ctx: opened after Redis and Cassandra, closed before them.
    # The keyspace guard (hub/storage/binding.py): a conflict stops start-up with one line.
    await bind_unless_down(app[REDIS], app[SETTINGS], app[QUEUE])
    app[HUB] = Hub.build(app[SETTINGS], app[REDIS], app[CASSANDRA], app[QUEUE], app[METRICS])
    app[INTAKE] = Intake(app[HUB])
    yield
    await app[INTAKE].close()
