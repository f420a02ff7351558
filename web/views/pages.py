"""Pages: ``GET /`` and ``GET /demo``, the live notification inbox (jinja2, plain JS).

The page takes the user token from its own URL (``/demo?token=...``) and shows it in the
``<hub-inbox>`` element (web/static/hub-inbox.js). Two helper routes serve only the
development app ``demo`` while it keeps its published secret (``DEV_SECRET``, from
config.toml; production sets another): ``POST /demo/activities`` posts a test activity as
another user into the token's user's notification feed, and ``POST /demo/token`` renews
the token; the page cannot sign either itself without the secret.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from aiohttp import web

from hub.domain.activity import decode_json, parse_activities_body
from hub.domain.tokens import issue_token
from hub.errors import Forbidden, InvalidRequest, NotFound
from hub.ops import intake
from web.keys import HUB, SETTINGS

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=jinja2.select_autoescape(["html"]),
    enable_async=False,
)


def render(name: str, **ctx: object) -> web.Response:
    html = _env.get_template(name).render(**ctx)
    resp = web.Response(text=html, content_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    return resp


async def index(request: web.Request) -> web.Response:
    return render("demo.html", title="Hub: live inbox", has_token="token" in request.query)


async def demo(request: web.Request) -> web.Response:
    return render("demo.html", title="Hub: live inbox", has_token="token" in request.query)


async def static(request: web.Request) -> web.StreamResponse:
    """A file under web/static. Not aiohttp's ``add_static``: its missing file is an empty
    404 sent past the middleware, where every error must be in the contract's shape."""
    try:
        path = (STATIC / request.match_info["filename"]).resolve()
        found = path.is_relative_to(STATIC) and path.is_file()
    except (OSError, ValueError):  # a NUL byte, a name too long
        found = False
    if not found:
        raise NotFound("no such file", field="filename")
    return web.FileResponse(path)


DEMO_APP = "demo"
DEV_SECRET = "whsec_ZGVtby1zZWNyZXQtZm9yLWxvY2FsLXVzZS1vbmx5"  # config.toml's public development secret
DEMO_TOKEN_TTL = 3600


def _demo_user(request: web.Request) -> str:
    """The user of a valid token of the demo app, while that app runs with its public secret."""
    from web.views.feeds import user_claims  # feeds imports nothing of pages: no cycle, kept local

    claims = user_claims(request)
    app = request.app[SETTINGS].apps.get(DEMO_APP)
    if claims.app != DEMO_APP or app is None or app.secret != DEV_SECRET:
        raise Forbidden("the demo helpers serve only the development app 'demo'", field="app")
    return claims.user


async def demo_activity(request: web.Request) -> web.Response:
    """Post one test activity (``actor``, ``verb``, ``object``) into the caller's own
    notification feed, as the app would: 202 means durable, as for the signed route."""
    user = _demo_user(request)
    data = decode_json(await request.read())
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", field="body")
    body = {k: data[k] for k in ("actor", "verb", "object") if k in data}
    body["to"] = [f"notification:{user}"]
    inputs = parse_activities_body(body, now=datetime.now(timezone.utc))
    results = await intake.accept(request.app[HUB], DEMO_APP, inputs, batch=False)
    return web.json_response({"activities": results}, status=202)


async def demo_token(request: web.Request) -> web.Response:
    """A fresh token for the caller's user (the page's ``refreshToken``)."""
    user = _demo_user(request)
    app = request.app[SETTINGS].apps[DEMO_APP]
    return web.json_response({"token": issue_token(app.id, app.key, user, DEMO_TOKEN_TTL, now=int(time.time()))})
