"""The one place where errors become HTTP answers.

Every error leaves as ``{"error": {"code", "message", "field"?}}`` (docs/api.md, Errors):
domain errors with their own code, aiohttp's 404/405/413, a body that is malformed on the
wire (a ``Content-Encoding`` that does not decode) or that trickles in (400
``invalid_request``), and a dependency outage (503 ``unavailable``, see
hub/storage/outage.py). Only a bug is a 500, logged, without internals. aiohttp's own
protocol errors, answered before any middleware runs, are shaped in web/server.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from hub.errors import HubError, InvalidRequest, TooLarge, Unavailable
from hub.storage.outage import DEPENDENCY_DOWN, as_unavailable
from web.keys import METRICS

log = logging.getLogger(__name__)

STATUS: dict[str, int] = {
    "invalid_json": 400, "invalid_activity": 400, "invalid_request": 400,
    "bad_signature": 401, "bad_token": 401, "expired": 401,
    "forbidden": 403, "not_found": 404, "method_not_allowed": 405, "too_large": 413,
    "rate_limited": 429, "unavailable": 503,
}

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 400: "invalid_request"}

# How long a request body may take to arrive once its headers have (a body that trickles in
# would otherwise hold a connection and a handler forever). Overridden per app with
# BODY_TIMEOUT (create_app's body_timeout).
DEFAULT_BODY_TIMEOUT = 15.0
BODY_TIMEOUT = web.AppKey("body_timeout", float)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(err: HubError) -> web.Response:
    resp = web.json_response(err.as_dict(), status=STATUS.get(err.code, 400))
    retry_after = getattr(err, "retry_after", None)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def read_whole_body(request: web.Request) -> None:
    """Read the body now, bounded in size and time, so that every view finds it read
    (``request.read()`` returns the kept bytes) and no view meets a wire error.

    Raises TooLarge, or InvalidRequest for a body that does not arrive in time or does
    not decode (``Content-Encoding: gzip`` on bytes that are not gzip)."""
    if not request.body_exists:
        return
    limit = request.client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the body is over {limit} bytes", field="body")
    timeout = request.app.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT)
    try:
        async with asyncio.timeout(timeout):
            await request.read()
    except TimeoutError:
        raise InvalidRequest(f"the body did not arrive within {timeout:g} s", field="body") from None
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"the body is over {limit} bytes", field="body") from None
    except HttpProcessingError as e:
        raise InvalidRequest(f"the body could not be read: {e.message}", field="body") from None
    except web.RequestPayloadError as e:
        # The payload parser's error (a Content-Encoding that does not decode, a broken chunk).
        cause = e.__cause__
        why = cause.message if isinstance(cause, HttpProcessingError) else "malformed body"
        raise InvalidRequest(f"the body could not be read: {why}", field="body") from None


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    status = 500
    try:
        await read_whole_body(request)
        resp = await handler(request)
        status = resp.status
        return resp
    except HubError as e:
        if isinstance(e, Unavailable):
            request.app[METRICS].dependency_error(e)
        resp = error_response(e)
        if e.field == "body" and not request.content.is_eof():
            resp.force_close()  # the rest of that body is not worth waiting for
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
    except DEPENDENCY_DOWN as e:
        log.warning("%s %s: dependency down: %r", request.method, request.path, e)
        request.app[METRICS].dependency_error(e)
        resp = error_response(as_unavailable(e))
        status = resp.status
        return resp
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal", "internal error")
    finally:
        metrics = request.app[METRICS]
        metrics.requests.labels(route, str(status)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
