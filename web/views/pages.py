"""Pages: ``GET /`` and ``GET /demo``, the live notification inbox (jinja2, plain JS).

The page takes the user token from its own URL (``/demo?token=...``): it reads the
notification feed over HTTP and follows it over the websocket (web/static/inbox.js).
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web

from hub.errors import NotFound

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
