"""The OpenAPI document's paths: one operation per route of web/routes.py and realtime.

Every operation lists each status its view can answer; tests/integration/test_openapi.py
checks that this table and the app's router name the same routes, and schemathesis
checks the answers against it.
"""

from __future__ import annotations

from typing import Any

from web.openapi.schemas import FEED_ID_PATTERN, GROUP_PATTERN, ID_PATTERN, SIGNED, USER, error_response, ref

APP = "/v1/apps/{app}"
_JSON = "application/json"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string", "minLength": 1}}


_APP = _path("app", "the app (tenant) id, a key of [apps] in the configuration")
_USER = _path("user", "the app's user id", ref("UserId"))
_GROUP = _path("group", "a feed group configured in [feeds]", {"type": "string", "pattern": GROUP_PATTERN})
_LIMIT = {"name": "limit", "in": "query", "description": "page size (ASCII digits)",
          "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25}}
_ID_LT = {"name": "id_lt", "in": "query", "description": "cursor: the next of the previous page",
          "schema": {"type": "string", "maxLength": 1024}}
_CURSOR = {"name": "cursor", "in": "query", "description": "the next of the previous page",
           "schema": {"type": "string", "maxLength": 1024}}
_FILTER = {"name": "filter", "in": "query",
           "description": "the view: all (the default: every entry not archived), unread, unseen (not archived "
                          "either) or archived; pages with the same cursors",
           "schema": {"type": "string", "enum": ["all", "unread", "unseen", "archived"], "default": "all"}}
_FOREIGN_ID = {"name": "foreign_id", "in": "query", "description": "the activity's foreign_id",
               "schema": {"type": "string", "pattern": ID_PATTERN}}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {_JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): error_response(s) for s in statuses}


# What a signed app call can answer besides its own success (web/signed.py).
_SIGNED_ERRORS = (400, 401, 404, 413, 429, 503)
# What a user call can answer (web/views/feeds.py).
_USER_ERRORS = (400, 401, 403, 404, 413, 503)


def _signed(summary: str, ok: dict[str, Any], *, params: list[dict[str, Any]] | None = None,
            body: dict[str, Any] | None = None, description: str = "") -> dict[str, Any]:
    op: dict[str, Any] = {"tags": ["app calls"], "summary": summary, "security": SIGNED,
                          "parameters": [_APP, *(params or [])], "responses": {**ok, **_errors(*_SIGNED_ERRORS)}}
    if body is not None:
        op["requestBody"] = body
    if description:
        op["description"] = description
    return op


def _user(summary: str, ok: dict[str, Any], *, params: list[dict[str, Any]] | None = None,
          body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"tags": ["user calls"], "summary": summary, "security": USER,
                          "parameters": [_GROUP, _USER, *(params or [])],
                          "responses": {**ok, **_errors(*_USER_ERRORS)}}
    if body is not None:
        op["requestBody"] = body
    return op


def _plain(tag: str, summary: str, ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    return {"tags": [tag], "summary": summary, "security": [], "responses": {**ok, **_errors(400, *errors)}}


_NO_CONTENT = {"204": {"description": "done"}}
_MARK = _body(ref("Marks"))
_COUNTS = {"200": _json(ref("Counts"), "the feed's counts after the mark")}
_FEED = {"200": _json(ref("FeedPage"), "a page, newest first, and the feed's counts")}
_DELETE = {"202": _json(ref("Deleted"), "removed from every feed it reached (fan-out queued)")}
_HTML = {"200": {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}


def paths() -> dict[str, dict[str, Any]]:
    """The ``paths`` object of the document."""
    return {
        "/healthz": {"get": _plain("operations", "Alive", {"200": _json(ref("Health"), "the process answers")})},
        "/readyz": {"get": _plain(
            "operations", "Ready: Redis and Cassandra answer",
            {"200": _json(ref("Ready"), "both dependencies answer")}, 503)},
        "/metrics": {"get": _plain("operations", "Prometheus metrics", {"200": {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}}}})},
        f"{APP}/activities": {
            "post": _signed(
                "Post an activity or a batch", {"202": _json(ref("Accepted"), "stored durably, fan-out queued")},
                body=_body({"anyOf": [ref("Activity"), ref("AS2Activity"), ref("ActivityBatch")]}),
                description="The same foreign_id twice is the same activity: the second post returns the "
                            "first id and fans out nothing."),
            "delete": _signed("Delete an activity by foreign_id", _DELETE, params=[_FOREIGN_ID]),
        },
        f"{APP}/activities/{{id}}": {
            "delete": _signed("Delete an activity", _DELETE, params=[_path("id", "the hub's activity id")]),
        },
        f"{APP}/follows": {
            "put": _signed("Follow", _NO_CONTENT, body=_body(ref("Follow")),
                           description="The followee's latest `copy` activities are copied in."),
            "delete": _signed("Unfollow", _NO_CONTENT, body=_body(ref("Unfollow")),
                              description="Unless keep_history, the followee's activities leave the "
                                          "follower's feeds."),
        },
        f"{APP}/users/{{user}}/followers": {"get": _signed(
            "A user's followers", {"200": _json(ref("UserPage"), "ordered by user id")},
            params=[_USER, _LIMIT, _CURSOR])},
        f"{APP}/users/{{user}}/following": {"get": _signed(
            "Whom a user follows", {"200": _json(ref("UserPage"), "ordered by user id")},
            params=[_USER, _LIMIT, _CURSOR])},
        f"{APP}/tokens": {"post": _signed(
            "Issue a user token", {"200": _json(ref("Token"), "an HS256 JWT for the user")},
            body=_body(ref("TokenRequest")))},
        f"{APP}/feeds/{{group}}/{{user}}": {"get": _signed(
            "Read any user's feed (as the app)", _FEED, params=[_GROUP, _USER, _LIMIT, _ID_LT, _FILTER])},
        "/v1/feeds/{group}/{user}": {"get": _user(
            "Read the token user's feed", _FEED, params=[_LIMIT, _ID_LT, _FILTER])},
        "/v1/feeds/{group}/{user}/seen": {"post": _user("Mark entries seen", _COUNTS, body=_MARK)},
        "/v1/feeds/{group}/{user}/read": {"post": _user("Mark entries read (and seen)", _COUNTS, body=_MARK)},
        "/v1/feeds/{group}/{user}/archive": {"post": _user(
            "Archive entries: out of the default view and the counts until an activity joins them",
            _COUNTS, body=_MARK)},
        "/v1/feeds/{group}/{user}/unarchive": {"post": _user("Bring archived entries back", _COUNTS, body=_MARK)},
        "/v1/realtime/sse": {"get": {
            "tags": ["realtime"], "summary": "Server-sent events (docs/api.md, Server-sent events)",
            "description": "The websocket's server frames for one feed as events: `event:` the op, `id:` the "
                           "frame's cursor when it has one, `data:` the frame. The stream starts with the "
                           "subscribed frame; Last-Event-ID (or since) resumes as a subscribe with since. "
                           "Refused before the stream: a bad or expired token (401), an Origin outside the "
                           "app's allowed_origins or another user's feed (403), a missing feed or bad cursor "
                           "(400).",
            "security": [{"socketToken": []}],
            "parameters": [
                {"name": "feed", "in": "query", "required": True, "description": "<group>:<user>, the token's user",
                 "schema": {"type": "string", "pattern": FEED_ID_PATTERN}},
                {"name": "since", "in": "query", "description": "a cursor this server sent",
                 "schema": {"type": "string", "maxLength": 1024}},
                {"name": "Last-Event-ID", "in": "header", "description": "as since; wins over it",
                 "schema": {"type": "string", "maxLength": 1024}},
                {"name": "Origin", "in": "header", "schema": {"type": "string"},
                 "description": "checked against the app's allowed_origins when present"}],
            "responses": {"200": {"description": "an event stream that lasts until the token expires",
                                  "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                          **_errors(400, 401, 403, 404, 503)},
        }},
        "/v1/realtime": {"get": {
            "tags": ["realtime"], "summary": "Websocket gateway (docs/api.md, Websocket)",
            "description": "Upgrade to a websocket carrying JSON text frames: subscribe, unsubscribe and ping "
                           "from the client; subscribed, entry, deleted, counts, archived, unarchived, pong and error from the server. "
                           "Refused before the upgrade: a bad or expired token (401), an Origin outside the "
                           "app's allowed_origins (403), a request that is not an upgrade (400).",
            "security": [{"socketToken": []}],
            "parameters": [{"name": "Origin", "in": "header", "schema": {"type": "string"},
                            "description": "checked against the app's allowed_origins when present"}],
            "responses": {"101": {"description": "switched to the websocket protocol"},
                          **_errors(400, 401, 403, 503)},
        }},
        "/": {"get": _plain("pages", "The live inbox page", _HTML)},
        "/demo": {"get": _plain("pages", "The live inbox page (?token=...)", _HTML)},
        # The demo page's helpers: only for the development app "demo" with its public secret.
        "/demo/activities": {"post": {
            "tags": ["pages"], "summary": "Post a test activity into the token's user's notification feed (demo app)",
            "security": USER, "requestBody": _body({"type": "object", "properties": {
                "actor": {"type": "string"}, "verb": {"type": "string"}, "object": {"type": "string"}}}),
            "responses": {"202": _json(ref("Accepted"), "stored durably, fan-out queued"),
                          **_errors(400, 401, 403, 413, 503)},
        }},
        "/demo/token": {"post": {
            "tags": ["pages"], "summary": "A fresh token for the token's user (demo app)", "security": USER,
            "responses": {"200": _json(ref("Token"), "an HS256 JWT for the user"), **_errors(400, 401, 403, 503)},
        }},
        "/static/{filename}": {"get": {
            "tags": ["pages"], "summary": "Static files (scripts, styles)", "security": [],
            "parameters": [_path("filename", "a file under web/static")],
            "responses": {"200": {"description": "the file", "content": {"*/*": {"schema": {}}}},
                          **_errors(400, 404)},
        }},
        "/openapi.json": {"get": _plain("operations", "This document", {"200": {
            "description": "OpenAPI 3.1", "content": {_JSON: {"schema": {"type": "object"}}}}})},
        "/docs": {"get": _plain("operations", "This document, as a page", _HTML)},
    }
