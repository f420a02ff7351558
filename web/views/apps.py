"""Signed app calls: activities, follows, follower lists and tokens (docs/api.md, Routes)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from hub.config import AppSettings
from hub.domain.activity import decode_json, parse_activities_body, validate_id, validate_user_id
from hub.domain.tokens import issue_token
from hub.errors import InvalidRequest
from hub.ops import follow as follow_ops
from hub.ops import intake
from hub.ops.intake import Incoming
from web.keys import HUB, INTAKE, METRICS
from web.signed import Prepared, pending_answer, signed, signed_claiming
from web.views.params import query_cursor, query_int

MAX_COPY = 1000


def _object(body: bytes) -> dict[str, Any]:
    data = decode_json(body)
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", field="body")
    return data


def _int(data: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    v = data.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InvalidRequest(f"{name} must be an integer from {lo} to {hi}", field=name)
    return int(v)


def _bool(data: dict[str, Any], name: str, default: bool) -> bool:
    v = data.get(name, default)
    if not isinstance(v, bool):
        raise InvalidRequest(f"{name} must be true or false", field=name)
    return v


def _incoming(request: web.Request, app: AppSettings, body: bytes) -> Prepared[Incoming]:
    data = decode_json(body)
    inputs = parse_activities_body(data, now=datetime.now(timezone.utc))
    batch = isinstance(data, dict) and "activities" in data
    incoming = request.app[INTAKE].prepare(app.id, inputs, batch=batch)
    return Prepared(incoming, incoming.claims, incoming.claim_ttl)


@signed_claiming(_incoming)
async def post_activities(request: web.Request, app: AppSettings, incoming: Incoming, found: list[Any]) -> tuple[int, Any]:
    # The answer is written to Cassandra in intake's round (replay that survives Redis).
    answer = pending_answer(request, _accepted)
    results = await request.app[INTAKE].accept(incoming, found, answer=answer)
    request.app[METRICS].activities.labels(app.id).inc(len(results))
    return _accepted(results)


def _accepted(results: list[dict[str, str | None]]) -> tuple[int, Any]:
    return 202, {"activities": results}


@signed
async def delete_activity(request: web.Request, app: AppSettings, body: bytes) -> tuple[int, Any]:
    activity_id = request.match_info.get("id")
    if activity_id:
        activity_id = validate_id(activity_id, "id")
    foreign_id = request.query.get("foreign_id")
    if foreign_id is not None:
        foreign_id = validate_id(foreign_id, "foreign_id")
    if not activity_id and not foreign_id:
        raise InvalidRequest("give the activity id in the path or ?foreign_id=", field="foreign_id")
    deleted = await intake.delete(request.app[HUB], app.id, activity_id or None, foreign_id)
    return 202, {"id": deleted}


@signed
async def put_follow(request: web.Request, app: AppSettings, body: bytes) -> tuple[int, Any]:
    data = _object(body)
    follower = validate_user_id(data.get("follower"), "follower")
    followee = validate_user_id(data.get("followee"), "followee")
    if follower == followee:
        raise InvalidRequest("a user cannot follow themselves", field="followee")
    copy = _int(data, "copy", 100, 0, MAX_COPY)
    await follow_ops.follow(request.app[HUB], app.id, follower, followee, copy)
    return 204, None


@signed
async def delete_follow(request: web.Request, app: AppSettings, body: bytes) -> tuple[int, Any]:
    data = _object(body)
    follower = validate_user_id(data.get("follower"), "follower")
    followee = validate_user_id(data.get("followee"), "followee")
    keep = _bool(data, "keep_history", False)
    await follow_ops.unfollow(request.app[HUB], app.id, follower, followee, keep)
    return 204, None


async def _follow_list(request: web.Request, app: AppSettings, direction: str) -> tuple[int, Any]:
    user = validate_user_id(request.match_info["user"], "user")
    limit = query_int(request, "limit", 25, 1, 100)
    raw_cursor = query_cursor(request, "cursor")  # a user id (the last of the page before)
    cursor = validate_user_id(raw_cursor, "cursor") if raw_cursor is not None else None
    users, nxt = await request.app[HUB].follows.page(app.id, user, direction, limit, cursor)
    return 200, {"results": users, "next": nxt}


@signed
async def followers(request: web.Request, app: AppSettings, body: bytes) -> tuple[int, Any]:
    return await _follow_list(request, app, "followers")


@signed
async def following(request: web.Request, app: AppSettings, body: bytes) -> tuple[int, Any]:
    return await _follow_list(request, app, "following")


@signed
async def post_token(request: web.Request, app: AppSettings, body: bytes) -> tuple[int, Any]:
    data = _object(body)
    user = validate_user_id(data.get("user"), "user")
    ttl = data.get("ttl", 3600)
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise InvalidRequest("ttl must be an integer number of seconds", field="ttl")
    return 200, {"token": issue_token(app.id, app.key, user, ttl, now=int(time.time()))}

