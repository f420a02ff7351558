"""The OpenAPI 3.1 description of every HTTP route: ``GET /openapi.json`` and ``GET /docs``.

The document is built from code (``paths.py``, ``schemas.py``), not from the routes, so
that it can say what each route accepts and answers; ``router_operations`` lists what
the router really serves so a test can hold the two in step. ``/docs`` renders the
document on the server with jinja2: no script, no CDN, readable offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aiohttp import web

from web.openapi.paths import paths
from web.openapi.schemas import RESPONSES, SCHEMAS, SECURITY_SCHEMES
from web.views.pages import render

__all__ = ["document", "docs", "openapi_json", "router_operations"]

METHODS = ("get", "put", "post", "delete", "patch")


@lru_cache(maxsize=1)
def _document_bytes() -> bytes:
    # Built once per process: the document is a constant of the code, not of the config.
    return json.dumps(_build(), separators=(",", ":")).encode()


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a fresh copy: callers may change it)."""
    doc: dict[str, Any] = json.loads(_document_bytes())
    return doc


def _build() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hub",
            "version": "1",
            "description": (
                "An open notification and activity hub. App calls are signed as Standard Webhooks do "
                "(webhook-id, webhook-timestamp, webhook-signature); user calls carry a bearer JWT. "
                'Every error is {"error": {"code", "message", "field"?}}; bad input is a 4xx, a '
                "dependency that does not answer a 503, never another 5xx."
            ),
            "license": {"name": "BSD-3-Clause", "identifier": "BSD-3-Clause"},
        },
        "tags": [
            {"name": "app calls", "description": "Signed with the app's secret (Standard Webhooks)."},
            {"name": "user calls", "description": "Authorization: Bearer <user token>; own feeds only."},
            {"name": "realtime", "description": "The websocket gateway."},
            {"name": "operations", "description": "Health, readiness, metrics and this document."},
            {"name": "pages", "description": "HTML pages and static files."},
        ],
        "paths": paths(),
        "components": {"schemas": SCHEMAS, "responses": RESPONSES, "securitySchemes": SECURITY_SCHEMES},
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type="application/json")


@dataclass(frozen=True)
class _Op:
    method: str
    path: str
    op: dict[str, Any]


def _ref_name(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("$ref"), str):
        return str(obj["$ref"]).rsplit("/", 1)[-1]
    return None


async def docs(request: web.Request) -> web.Response:
    doc = document()
    ops = [_Op(m.upper(), p, item[m]) for p, item in doc["paths"].items() for m in METHODS if m in item]
    responses = doc["components"]["responses"]
    return render(
        "docs.html", title="hub API", doc=doc, ops=ops, ref_name=_ref_name, responses=responses,
        pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False),
        compact=lambda v: json.dumps(v, separators=(", ", ": "), ensure_ascii=False),
    )


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every route the app serves, in the document's spelling.

    The HEAD that aiohttp adds beside each GET is left out (it answers as the GET does,
    without a body); a static directory is ``<prefix>/{filename}``.
    """
    out: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or resource is None:
            continue
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path = path.rstrip("/") + "/{filename}"
        out.add((route.method, path))
    return out
