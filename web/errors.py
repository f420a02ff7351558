"""The one place where domain errors become HTTP answers.

Every error leaves as ``{"error": {"code", "message", "field"?}}`` (contract section 4),
including aiohttp's own 404/405/413 and anything unexpected, which is logged and reported
as a 500 without internals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from hub.errors import HubError
from web.keys import METRICS

log = logging.getLogger(__name__)

STATUS: dict[str, int] = {
    "invalid_json": 400, "invalid_activity": 400, "invalid_request": 400,
    "bad_signature": 401, "bad_token": 401, "expired": 401,
    "forbidden": 403, "not_found": 404, "method_not_allowed": 405, "too_large": 413,
    "rate_limited": 429, "unavailable": 503,
}

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 400: "invalid_request"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(err: HubError) -> web.Response:
    resp = web.json_response(err.as_dict(), status=STATUS.get(err.code, 400))
    retry_after = getattr(err, "retry_after", None)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except HubError as e:
        resp = error_response(e)
        status = resp.status
        return resp
    except web.HTTPException as e:
        if e.status < 400:
            status = e.status
            raise
        code = _HTTP_CODES.get(e.status, "invalid_request")
        message = {404: "no such resource", 405: f"method {request.method} is not allowed here",
                   413: "the body is too large"}.get(e.status, e.reason)
        resp = json_error(e.status, code, message)
        if e.status == 405 and "Allow" in e.headers:
            resp.headers["Allow"] = e.headers["Allow"]
        status = e.status
        return resp
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal", "internal error")
    finally:
        metrics = request.app[METRICS]
        metrics.requests.labels(route, str(status)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
