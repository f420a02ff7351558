"""Signed app calls: size limit, signature, rate limit and replay protection.

``signed(view)`` wraps a view that takes ``(request, app, body)`` and returns
``(status, json_or_None)``. The first answer to a ``webhook-id`` is kept for 10 minutes
and repeated to a retry without running the view again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hub.config import AppSettings
from hub.domain.signing import verify
from hub.errors import HubError, NotFound, RateLimited, TooLarge, Unavailable
from hub.storage.redis import REDIS_DOWN, Keys
from web.errors import error_response
from web.keys import REDIS, SETTINGS, SIGNED

REPLAY_TTL = 600
# How long a webhook-id stays claimed by a try that neither answered nor failed cleanly
# (its process died): then a retry runs it again.
RUNNING_TTL = 60
MAX_BODY = 1024 * 1024
# A retry arriving while the first try is still running waits this long for its answer.
REPLAY_WAIT = 10.0

SignedView = Callable[[web.Request, AppSettings, bytes], Awaitable[tuple[int, Any]]]


def app_of(request: web.Request) -> AppSettings:
    app = request.app[SETTINGS].apps.get(request.match_info["app"])
    if app is None:
        raise NotFound("no such app", field="app")
    return app


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise TooLarge(f"the body is over {MAX_BODY} bytes", field="body")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"the body is over {MAX_BODY} bytes", field="body") from None


def signed(view: SignedView) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        app = app_of(request)
        body = await read_body(request)
        webhook_id = verify(app.key, request.headers, body, now=time.time())
        redis = request.app[REDIS]
        keys = Keys(request.app[SETTINGS].redis.key_prefix, app.id)
        replay_key = keys.webhook(webhook_id)
        try:
            scripts = request.app[SIGNED]
            gate = await scripts.gate([replay_key, keys.rate()], [app.rate, app.burst, time.time(), RUNNING_TTL])
            if gate[0] == 1:
                return await _repeat(redis, replay_key, gate[1])
        except REDIS_DOWN as e:
            raise Unavailable(f"redis: {e}") from e
        if gate[0] == 2:
            raise RateLimited(f"app {app.id} is over {app.rate:g} requests/s", retry_after=int(gate[1]))
        try:
            status, payload = await view(request, app, body)
            resp = _answer(status, payload)
        except HubError as e:
            resp = error_response(e)
        except BaseException:
            # Not answered: let the retry run it again rather than repeat nothing.
            await redis.delete(replay_key)
            raise
        if resp.status >= 500 or resp.status == 429:
            await redis.delete(replay_key)  # a retry should really be retried
        else:
            record = json.dumps({"s": resp.status, "b": resp.text if resp.body else None})
            scripts.keep(replay_key, record, REPLAY_TTL)
        return resp

    return handler


def _answer(status: int, payload: Any) -> web.Response:
    if payload is None:
        return web.Response(status=status)
    return web.json_response(payload, status=status)


async def _repeat(redis: Any, key: str, raw: Any) -> web.Response:
    deadline = time.monotonic() + REPLAY_WAIT
    while True:
        if raw:
            rec = json.loads(raw)
            if rec["b"] is None:
                return web.Response(status=rec["s"])
            return web.Response(status=rec["s"], text=rec["b"], content_type="application/json")
        if raw is None or time.monotonic() > deadline:
            # The first try failed (its record was dropped) or hangs: ask for a retry.
            raise Unavailable("the first delivery of this webhook-id is still being processed; retry")
        await asyncio.sleep(0.05)
        raw = await redis.get(key)
