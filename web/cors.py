"""Cross-origin calls from the browser client (web/static; docs/frontend.md, Embedding).

The client and ``<hub-inbox>`` run on an app's own pages, usually another origin than the
hub's, so the browser asks before letting such a page read an answer:

- ``/static/*`` are public files: any origin may read them (``Access-Control-Allow-Origin:
  *``; module scripts are fetched in CORS mode, so an ``import`` from another origin needs it).
- User calls under ``/v1/feeds/``: a request whose ``Origin`` is in some app's
  ``allowed_origins`` gets that origin back; its preflight (``OPTIONS`` with
  ``Access-Control-Request-Method``) is answered 204 with the methods and headers the
  client sends. Any other origin gets no such header, and the browser keeps the answer
  from the page.

This only decides what a page may read: the bearer token still decides what is read or
changed (a user reads and marks only their own feeds), and no cookies are involved, so
credentials are never allowed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from web.keys import SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


def _allowed(request: web.Request, origin: str) -> str | None:
    """The value of ``Access-Control-Allow-Origin`` for this request, or None."""
    if request.path.startswith("/static/"):
        return "*"
    if request.path.startswith("/v1/feeds/"):
        wanted = origin.rstrip("/").lower()
        for app in request.app[SETTINGS].apps.values():
            if any(o.lower() == wanted for o in app.allowed_origins):
                return origin
    return None


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    allow = _allowed(request, origin) if origin else None
    if allow is None:
        return await handler(request)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        resp: web.StreamResponse = web.Response(status=204, headers=PREFLIGHT_HEADERS)
    else:
        resp = await handler(request)
    resp.headers["Access-Control-Allow-Origin"] = allow
    resp.headers["Access-Control-Expose-Headers"] = "Retry-After"
    if allow != "*":
        resp.headers["Vary"] = "Origin"
    return resp
