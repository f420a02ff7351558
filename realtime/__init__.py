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
from realtime.gateway import Gateway, origin_allowed

GATEWAY = web.AppKey("realtime_gateway", Gateway)
PATH = "/v1/realtime"

__all__ = ["GATEWAY", "PATH", "Gateway", "origin_allowed", "setup"]


def setup(app: web.Application, settings: Settings, get_hub: Callable[[web.Application], Hub], *,
          queue_size: int = 256, heartbeat: float = 30.0, replay_limit: int = 100) -> Gateway:
    """Add ``GET /v1/realtime`` to ``app``; the gateway starts after the app's own start-up."""
    gw = Gateway(settings, get_hub, queue_size=queue_size, heartbeat=heartbeat, replay_limit=replay_limit)
    app[GATEWAY] = gw
    app.router.add_get(PATH, gw.handle)
    app.on_startup.append(gw.start)
    app.on_shutdown.append(gw.stop)
    return gw
