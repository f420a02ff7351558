"""Signed app calls: size limit, signature, rate limit and replay protection.

``signed(view)`` wraps a view that takes ``(request, app, body)`` and returns
``(status, json_or_None)``. The first answer to a ``webhook-id`` is kept for 10 minutes
and repeated to a retry without running the view again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from redis.exceptions import NoScriptError

from hub.config import AppSettings
from hub.domain.signing import verify
from hub.errors import HubError, NotFound, RateLimited, TooLarge, Unavailable
from hub.storage.redis import REDIS_DOWN, Keys
from web.errors import error_response
from web.keys import REDIS, SETTINGS

REPLAY_TTL = 600
MAX_BODY = 1024 * 1024
# A retry arriving while the first try is still running waits this long for its answer.
REPLAY_WAIT = 10.0

# One round trip per signed call: a known webhook-id gets its first answer back (or "" while
# that first try still runs) without costing a token; otherwise the app's token bucket is
# charged and, when a token was left, the webhook-id is claimed.
# KEYS: replay key, bucket. ARGV: rate/s, burst, now, replay TTL.
# Returns {0} (go on), {1, record} (a repeat), or {2, retry-after seconds}.
_GATE = """
local prior = redis.call('GET', KEYS[1])
if prior then return {1, prior} end
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[2], 't', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
if tokens < 1 then
  redis.call('HSET', KEYS[2], 't', tokens, 'ts', now)
  return {2, math.ceil((1 - tokens) / rate)}
end
redis.call('HSET', KEYS[2], 't', tokens - 1, 'ts', now)
redis.call('EXPIRE', KEYS[2], math.ceil(burst / rate) + 60)
redis.call('SET', KEYS[1], '', 'EX', ARGV[4])
return {0}
"""
_GATE_SHA = hashlib.sha1(_GATE.encode()).hexdigest()

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
            gate = await _gate(redis, replay_key, keys.rate(), app)
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
            await redis.set(replay_key, record, ex=REPLAY_TTL)
        return resp

    return handler


def _answer(status: int, payload: Any) -> web.Response:
    if payload is None:
        return web.Response(status=status)
    return web.json_response(payload, status=status)


async def _gate(redis: Any, replay_key: str, bucket: str, app: AppSettings) -> list[Any]:
    args = (replay_key, bucket, app.rate, app.burst, time.time(), REPLAY_TTL)
    try:
        result: list[Any] = await redis.evalsha(_GATE_SHA, 2, *args)
    except NoScriptError:  # Redis restarted or flushed its scripts
        result = await redis.eval(_GATE, 2, *args)
    return result


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
