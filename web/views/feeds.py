"""Feed reads, seen/read marks and archiving: by the user (bearer token) or by the app (signed)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.config import AppSettings, FeedGroup
from hub.domain.activity import decode_json
from hub.domain.fields import validate_id, validate_user_id
from hub.domain.tokens import TokenClaims
from hub.errors import BadToken, Forbidden, InvalidRequest
from hub.ops import archive, reads
from hub.ops.rebuild import ensure_built
from web.keys import HUB, VERIFIED_TOKENS
from web.signed import read_body, signed
from web.views.params import query_cursor, query_int

MAX_MARK_IDS = 1000


def user_claims(request: web.Request) -> TokenClaims:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BadToken("send Authorization: Bearer <token>")
    return request.app[VERIFIED_TOKENS].claims(token.strip())


def _own_feed(request: web.Request) -> tuple[str, FeedGroup, str]:
    claims = user_claims(request)
    group, user = _feed(request)
    if user != claims.user:
        raise Forbidden("a token reads and marks only its own user's feeds", field="user")
    return claims.app, group, user


def _feed(request: web.Request) -> tuple[FeedGroup, str]:
    user = validate_user_id(request.match_info["user"], "user")
    return request.app[HUB].group(request.match_info["group"]), user


def _limit(request: web.Request) -> int:
    return query_int(request, "limit", 25, 1, 100)


def _filter(request: web.Request) -> str:
    """``?filter=`` (docs/api.md, Filters); checked by reads.read_feed."""
    return request.query.get("filter", "all")


async def get_feed(request: web.Request) -> web.Response:
    app, group, user = _own_feed(request)
    page = await reads.read_feed(request.app[HUB], app, group, user, _limit(request), query_cursor(request, "id_lt"),
                                 _filter(request))
    return web.Response(body=page.to_bytes(), content_type="application/json")


@signed
async def app_get_feed(request: web.Request, app: AppSettings, body: bytes) -> tuple[int, Any]:
    group, user = _feed(request)
    page = await reads.read_feed(request.app[HUB], app.id, group, user, _limit(request),
                                 query_cursor(request, "id_lt"), _filter(request))
    return 200, page.to_json()


async def post_seen(request: web.Request) -> web.Response:
    return await _mark(request, "seen")


async def post_read(request: web.Request) -> web.Response:
    return await _mark(request, "read")


async def post_archive(request: web.Request) -> web.Response:
    return await _archive(request, archive.archive)


async def post_unarchive(request: web.Request) -> web.Response:
    return await _archive(request, archive.unarchive)


async def _archive(request: web.Request, op: Any) -> web.Response:
    """Archive or unarchive: the body and the ownership rules of a mark."""
    app, group, user = _own_feed(request)
    ids = await _ids_body(request)
    hub = request.app[HUB]
    if ids == []:
        await ensure_built(hub, app, group, user)
        return web.json_response(await reads.feed_counts(hub, app, group, group.feed_of(user)))
    return web.json_response(await op(hub, app, group, user, ids))


async def _mark(request: web.Request, kind: str) -> web.Response:
    app, group, user = _own_feed(request)
    ids = await _ids_body(request)
    if ids == []:
        # Nothing to mark: answer the counts as they are (a client marking what it shows
        # may show nothing), without a write or a counts push.
        hub = request.app[HUB]
        await ensure_built(hub, app, group, user)
        return web.json_response(await reads.feed_counts(hub, app, group, group.feed_of(user)))
    counts = await reads.mark(request.app[HUB], app, group, user, kind, ids)
    return web.json_response(counts)


async def _ids_body(request: web.Request) -> list[str] | None:
    """``{"ids": [...]}`` (the list) or ``{"all": true}`` (None), else a 400."""
    data = decode_json(await read_body(request))
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", field="body")
    ids: list[str] | None
    if data.get("all") is True and "ids" not in data:
        ids = None
    elif "ids" in data and "all" not in data:
        raw = data["ids"]
        if not isinstance(raw, list):
            raise InvalidRequest("ids must be a list of entry ids", field="ids")
        if len(raw) > MAX_MARK_IDS:
            raise InvalidRequest(f"at most {MAX_MARK_IDS} ids at once", field="ids")
        for i in raw:  # strings of text: no control characters, no lone surrogate ("\ud800")
            validate_id(i, "ids")
        ids = raw
    else:
        raise InvalidRequest('send {"ids": [...]} or {"all": true}', field="body")
    return ids
