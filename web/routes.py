"""URL routes, kept apart from the views."""

from __future__ import annotations

from aiohttp import web

from web.views import health


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
