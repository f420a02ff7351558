"""URL routes, kept apart from the views."""

from __future__ import annotations

from aiohttp import web

from web import openapi
from web.views import apps, feeds, health, pages


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", health.healthz)
    r.add_get("/readyz", health.readyz)
    r.add_get("/metrics", health.metrics)
    r.add_get("/openapi.json", openapi.openapi_json)
    r.add_get("/docs", openapi.docs)

    base = "/v1/apps/{app}"
    r.add_post(f"{base}/activities", apps.post_activities)
    r.add_delete(f"{base}/activities", apps.delete_activity)
    r.add_delete(f"{base}/activities/{{id}}", apps.delete_activity)
    r.add_put(f"{base}/follows", apps.put_follow)
    r.add_delete(f"{base}/follows", apps.delete_follow)
    r.add_get(f"{base}/users/{{user}}/followers", apps.followers)
    r.add_get(f"{base}/users/{{user}}/following", apps.following)
    r.add_post(f"{base}/tokens", apps.post_token)
    r.add_get(f"{base}/feeds/{{group}}/{{user}}", feeds.app_get_feed)

    r.add_get("/v1/feeds/{group}/{user}", feeds.get_feed)
    r.add_post("/v1/feeds/{group}/{user}/seen", feeds.post_seen)
    r.add_post("/v1/feeds/{group}/{user}/read", feeds.post_read)
    r.add_post("/v1/feeds/{group}/{user}/archive", feeds.post_archive)
    r.add_post("/v1/feeds/{group}/{user}/unarchive", feeds.post_unarchive)

    r.add_get("/", pages.index)
    r.add_get("/demo", pages.demo)
    r.add_post("/demo/activities", pages.demo_activity)
    r.add_post("/demo/token", pages.demo_token)
    r.add_get("/static/{filename:.+}", pages.static)
