"""Server-sent events, ``GET /v1/realtime/sse?token=&feed=&since=`` (docs/api.md, SSE).

The same frames as the websocket (section Websocket), one feed per stream, each as an
event: ``event:`` the frame's op, ``id:`` its cursor when it has one, ``data:`` the frame's
JSON (one line: JSON text never holds a raw newline). The stream starts with the
``subscribed`` frame of a subscribe with ``since`` (or the ``Last-Event-ID`` header, which
a browser's EventSource sends when it reconnects, and which wins), so a reconnect resumes
exactly as a websocket resubscribe does: every change after the cursor once, in order.

Nothing is duplicated: the stream is a :class:`realtime.conn.Conn` of the gateway whose
"socket" writes events (:class:`EventStream`), so the token and Origin checks
(realtime/handshake.py), the ownership rule, the subscribe with its replay and held live
frames (Gateway.subscribe, realtime/replay.py), the dispatcher's live frames, the bounded
send queue (a client that does not read is dropped) and the close at token expiry are the
websocket's. Refusals come before the stream starts, as HTTP errors: 401 (token), 403
(Origin, another user's feed), 400 (feed, since). A comment line every
``HEARTBEAT`` seconds keeps proxies from closing an idle stream and finds clients that left.
At expiry the stream ends with an ``event: close`` carrying ``{"op": "close", "code":
4001, "reason": "token expired"}`` (4008 when dropped for not reading); the client
reconnects with a new token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from aiohttp import web

from hub.errors import InvalidRequest
from hub.storage.outage import DEPENDENCY_DOWN, as_unavailable
from realtime.conn import Conn, State
from realtime.gateway import Gateway
from realtime.handshake import authenticate

log = logging.getLogger(__name__)

PATH = "/v1/realtime/sse"
HEARTBEAT = 15.0
_PING = b""  # queued like a frame, so heartbeats and frames never interleave


def event(data: bytes) -> bytes:
    """One frame (serialised JSON) as an event, or a comment line for a heartbeat."""
    if data == _PING:
        return b": ping\n\n"
    frame = json.loads(data)
    head = f"event: {frame.get('op', 'message')}\n"
    cursor = frame.get("cursor")
    if isinstance(cursor, str) and cursor:
        head += f"id: {cursor}\n"
    return head.encode() + b"data: " + data + b"\n\n"


class EventStream:
    """Stands in for the websocket of a :class:`Conn`: ``send_frame`` and ``close``."""

    def __init__(self, resp: web.StreamResponse) -> None:
        self.resp = resp
        self.done = asyncio.Event()

    async def send_frame(self, data: bytes, _opcode: Any = None) -> None:
        await self.resp.write(event(data))

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        if self.done.is_set():
            return False
        self.done.set()
        if code != 1000:
            close = {"op": "close", "code": code, "reason": message.decode(errors="replace")}
            with contextlib.suppress(Exception):
                await self.resp.write(b"event: close\ndata: " + json.dumps(close).encode() + b"\n\n")
        with contextlib.suppress(Exception):
            await self.resp.write_eof()
        return True


async def handle(gw: Gateway, request: web.Request, *, heartbeat: float = HEARTBEAT) -> web.StreamResponse:
    app, user, exp = authenticate(request, gw.settings, gw.keys)
    since = request.headers.get("Last-Event-ID") or request.query.get("since") or None
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    origin = request.headers.get("Origin")
    if origin is not None:  # allowed (authenticate checked it): a cross-origin EventSource may read it
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Vary"] = "Origin"
    stream = EventStream(resp)
    conn = Conn(stream, request, app, user, exp, queue_size=gw.queue_size, on_full=gw.drop,  # type: ignore[arg-type]
                frames=gw.metrics.ws_frames)
    if "feed" not in request.query:
        raise InvalidRequest("name the feed: ?feed=<group>:<user>", field="feed")
    feed = request.query["feed"]
    gw._target(conn, feed, since)  # 400 / 403 as HTTP, before the stream starts
    await resp.prepare(request)
    gw.conns.add(conn)
    gw.metrics.ws_connections.inc()
    conn.timer = asyncio.get_running_loop().call_later(max(0.0, exp - time.time()), gw._expire, conn)
    try:
        try:
            await gw.subscribe(conn, feed, since)
        except DEPENDENCY_DOWN as e:  # streaming already: an error event, then the end (the client retries)
            log.warning("realtime sse: dependency down: %r", e)
            gw._send_error(conn, {"feed": feed}, as_unavailable(e))
            await _drain(conn)
            return resp
        # Ends when the connection closes or the stream was closed under it (the gateway's
        # stop at shutdown closes streams, not connections: without this the loop spun on).
        while conn.open and not stream.done.is_set():
            try:
                await asyncio.wait_for(stream.done.wait(), heartbeat)
            except asyncio.TimeoutError:
                conn.push(_PING)  # a write to a client that left fails: the connection closes
    except Exception:
        log.exception("realtime sse: a stream of %s/%s failed", app, user)
        gw.metrics.ws_dropped.labels("error").inc()
    finally:
        gw._forget(conn)
        conn.state = State.CLOSED
        gw.metrics.ws_connections.dec()
        with contextlib.suppress(Exception):
            await stream.close()
    return resp


async def _drain(conn: Conn, timeout: float = 2.0) -> None:
    """Until what is queued is written (or the time is up)."""
    deadline = time.monotonic() + timeout
    while conn.queue and conn.state is State.OPEN and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
