"""The websocket handshake: token from the query string, then the Origin check.

Browsers always send ``Origin`` on a websocket, so a present Origin must match one of the
app's ``allowed_origins`` as a whole (scheme, host, port): a lookalike host or ``null`` is
refused. A request without Origin is not from a browser and is let through (the token
still decides what it may see).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from aiohttp import web

from hub.config import Settings
from hub.domain.tokens import verify_token
from hub.errors import Forbidden

__all__ = ["authenticate", "origin_allowed"]


def _origin_tuple(origin: str) -> tuple[str, str, int] | None:
    try:
        u = urlsplit(origin)
        port = u.port
    except ValueError:
        return None
    if u.scheme not in ("http", "https") or not u.hostname or u.path or u.query or u.fragment:
        return None
    if u.username is not None or u.password is not None:
        return None
    return u.scheme, u.hostname.lower(), port or (443 if u.scheme == "https" else 80)


def origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    """The whole origin (scheme, host, port) must match one allowed origin."""
    got = _origin_tuple(origin)
    return got is not None and any(got == _origin_tuple(a) for a in allowed)


def authenticate(request: web.Request, settings: Settings, keys: Mapping[str, str]) -> tuple[str, str, int]:
    """``(app, user, expiry)`` of a websocket request, or a HubError (answered over HTTP)."""
    claims = verify_token(request.query.get("token", ""), keys, now=int(time.time()))
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, settings.apps[claims.app].allowed_origins):
        raise Forbidden("this Origin is not in the app's allowed_origins", field="Origin")
    return claims.app, claims.user, claims.exp
