"""The websocket handshake: token from the query string, then the Origin check.

Browsers always send ``Origin`` on a websocket, so a present Origin must match one of the
app's ``allowed_origins`` as a whole (scheme, host, port): a lookalike host or ``null`` is
refused. A request without Origin is not from a browser and is let through (the token
still decides what it may see).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping

from aiohttp import web

from hub.config import Settings
from hub.domain.tokens import verify_token
from hub.errors import Forbidden

__all__ = ["authenticate", "origin_allowed"]


# An origin as browsers serialise it (RFC 6454): scheme "://" host [":" port], nothing else.
# The port is digits without a leading zero (so "08080" is not 8080) and at most 65535.
_ORIGIN = re.compile(r"(https?)://([a-z0-9._~-]+|\[[0-9a-f:.]+\])(?::([1-9][0-9]{0,4}))?", re.ASCII)
_DEFAULT_PORT = {"http": 80, "https": 443}


def _origin_tuple(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a well-formed origin, the port a number (default ports
    filled in, so ``https://a`` equals ``https://a:443``), else None."""
    m = _ORIGIN.fullmatch(origin.lower())
    if m is None:
        return None
    scheme, host, port = m.group(1), m.group(2), m.group(3)
    number = int(port) if port else _DEFAULT_PORT[scheme]
    if number > 65535:
        return None
    return scheme, host, number


def origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    """The whole origin (scheme, host, port) must match one allowed origin; ports are
    compared as numbers, a malformed origin (``http://h:08080``, a path, user info) matches none."""
    got = _origin_tuple(origin)
    return got is not None and any(got == _origin_tuple(a) for a in allowed)


def authenticate(request: web.Request, settings: Settings, keys: Mapping[str, bytes]) -> tuple[str, str, int]:
    """``(app, user, expiry)`` of a websocket request, or a HubError (answered over HTTP)."""
    claims = verify_token(request.query.get("token", ""), keys, now=int(time.time()))
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, settings.apps[claims.app].allowed_origins):
        raise Forbidden("this Origin is not in the app's allowed_origins", field="Origin")
    return claims.app, claims.user, claims.exp
