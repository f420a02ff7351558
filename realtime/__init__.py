"""The websocket gateway (docs/api.md, Websocket), mounted on the one ``hub serve`` app.

Compose it where the app is built (cli ``_serve``, tests)::

    app = create_app(settings)
    realtime.setup(app, settings, get_hub=lambda a: a[web.keys.HUB])

``realtime`` imports only ``hub``; the caller says where the app keeps its Hub.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from hub.config import Settings
from hub.core import Hub
from realtime import sse
from realtime.gateway import Gateway, origin_allowed

GATEWAY = web.AppKey("realtime_gateway", Gateway)
PATH = "/v1/realtime"

__all__ = ["GATEWAY", "PATH", "Gateway", "origin_allowed", "setup"]


def setup(app: web.Application, settings: Settings, get_hub: Callable[[web.Application], Hub], *,
          queue_size: int = 256, heartbeat: float = 30.0, replay_limit: int = 100,
          sse_heartbeat: float = sse.HEARTBEAT) -> None:
    """Add ``GET /v1/realtime`` and ``GET /v1/realtime/sse`` (realtime/sse.py) to ``app``. Its Gateway is built and started after the app's
    own start-up (when ``get_hub(app)`` has a Hub) and kept under ``app[GATEWAY]``."""

    async def start(app: web.Application) -> None:
        gw = Gateway(settings, get_hub(app), queue_size=queue_size, heartbeat=heartbeat,
                     replay_limit=replay_limit)
        app[GATEWAY] = gw
        await gw.start()

    async def stop(app: web.Application) -> None:
        if GATEWAY in app:
            await app[GATEWAY].stop()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await request.app[GATEWAY].handle(request)

    async def handle_sse(request: web.Request) -> web.StreamResponse:
        return await sse.handle(request.app[GATEWAY], request, heartbeat=sse_heartbeat)

    app.router.add_get(PATH, handle)
    app.router.add_get(sse.PATH, handle_sse)
    app.on_startup.append(start)
    app.on_shutdown.append(stop)
