"""The websocket gateway, ``GET /v1/realtime?token=`` (docs/api.md, Websocket).

- realtime/handshake.py: token and Origin checks;
- realtime/conn.py: one socket, its bounded send queue (a full queue drops that client,
  close code 4008, without slowing the others);
- realtime/dispatch.py: one Redis pub/sub subscription per process, a map (app, feed) ->
  local connections, each change turned into one frame written to every socket of its feed;
- realtime/inbound.py: client frames parsed within bounds (size, nesting);
- here: the connection's life and its client frames (subscribe, unsubscribe, ping).

Nothing a client sends ends as HTTP once the socket is upgraded: a dependency outage is an
``unavailable`` error frame (the client may retry the subscribe), a bug closes the socket
with 1011 (logged).

``subscribe`` with ``since`` registers the socket for live messages first (buffered),
replays the feed's change log after ``since``, sends ``subscribed`` and then the buffered
messages newer than the replay; later live messages not newer than it are dropped too:
nothing is lost or doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from hub.config import Settings
from hub.core import Hub
from hub.domain.activity import split_feed_id
from hub.errors import Forbidden, HubError, InvalidRequest
from hub.ops.rebuild import ensure_built
from hub.storage.changes import ChangeLog, parse_cursor
from hub.storage.outage import DEPENDENCY_DOWN, as_unavailable
from realtime.conn import CLOSE_EXPIRED, CLOSE_TOO_SLOW, Conn, dumps
from realtime.dispatch import Dispatcher, Key
from realtime.frames import FeedView
from realtime.handshake import authenticate, origin_allowed
from realtime.inbound import parse_client_frame

log = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE = 16 * 1024
# 1011: the server met an unexpected condition (RFC 6455).
CLOSE_INTERNAL = 1011

__all__ = ["CLOSE_EXPIRED", "CLOSE_TOO_SLOW", "Conn", "Gateway", "origin_allowed"]


class Gateway:
    def __init__(self, settings: Settings, get_hub: Callable[[web.Application], Hub], *, queue_size: int = 256,
                 heartbeat: float = 30.0, replay_limit: int = 100) -> None:
        self.settings = settings
        self.get_hub = get_hub
        self.queue_size = queue_size
        self.heartbeat = heartbeat
        self.replay_limit = replay_limit
        self.keys = {a.id: a.key for a in settings.apps.values()}
        self.conns: set[Conn] = set()
        self.dropped = 0
        self.hub: Hub
        self.log: ChangeLog
        self.view: FeedView
        self.dispatcher: Dispatcher

    @property
    def subs(self) -> dict[Key, set[Conn]]:
        return self.dispatcher.subs

    @property
    def delivered(self) -> int:
        return self.dispatcher.delivered

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, app: web.Application) -> None:
        self.hub = self.get_hub(app)
        self.log = ChangeLog(self.hub.redis, self.settings.redis.key_prefix)
        self.view = FeedView(self.hub)
        self.dispatcher = Dispatcher(self.settings.redis.url, self.log, self.view)
        await self.dispatcher.start()

    async def stop(self, app: web.Application) -> None:
        await self.dispatcher.stop()
        for c in list(self.conns):
            with contextlib.suppress(Exception):
                await c.ws.close(code=1001, message=b"server shutting down")

    async def entries(self, app: str, feed: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        return await self.view.entries(app, feed, ids)

    async def counts(self, app: str, feed: str) -> dict[str, int]:
        return await self.view.counts(app, feed)

    # -- connections -----------------------------------------------------------------------

    def drop(self, conn: Conn) -> None:
        """A client that does not read: forget it now, close it in the background."""
        if conn.closed:
            return
        self.dropped += 1
        self._forget(conn)
        conn.closed = True
        conn.queue.clear()
        conn.wake()
        if conn.writer is not None:
            conn.writer.cancel()
        asyncio.get_running_loop().create_task(self._close(conn, CLOSE_TOO_SLOW, b"send queue full"))

    async def _close(self, conn: Conn, code: int, message: bytes) -> None:
        try:
            await asyncio.wait_for(conn.ws.close(code=code, message=message), 2)
        except (asyncio.TimeoutError, Exception):
            pass
        # Whatever happened, the socket goes.
        req = conn.ws._req  # noqa: SLF001 - aiohttp offers no public abort
        if req is not None and req.transport is not None:
            req.transport.abort()

    def _forget(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for feed in list(conn.feeds):
            self.dispatcher.remove(conn, feed)
            conn.unfollow(feed)
        if conn.timer is not None:
            conn.timer.cancel()

    def _expire(self, conn: Conn) -> None:
        if conn.closed:
            return
        self._forget(conn)
        conn.closed = True
        conn.wake()
        asyncio.get_running_loop().create_task(self._close(conn, CLOSE_EXPIRED, b"token expired"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        app, user, exp = authenticate(request, self.settings, self.keys)
        ws = web.WebSocketResponse(heartbeat=self.heartbeat, max_msg_size=MAX_CLIENT_MESSAGE, compress=False)
        if not ws.can_prepare(request).ok:
            raise InvalidRequest("a websocket upgrade is required")
        await ws.prepare(request)
        conn = Conn(ws, app, user, exp, queue_size=self.queue_size, on_full=self.drop)
        self.conns.add(conn)
        conn.timer = asyncio.get_running_loop().call_later(max(0.0, exp - time.time()), self._expire, conn)
        try:
            async for msg in ws:
                if conn.closed:
                    break
                if msg.type != WSMsgType.TEXT:
                    continue
                await self._client_message(conn, msg.data)
                if not conn.has_room():
                    # Our answers wait for the client to read them before its next frame
                    # is read (conn.py); one that reads nothing for this long is dropped.
                    try:
                        await asyncio.wait_for(conn.wait_room(), self.heartbeat or 30.0)
                    except asyncio.TimeoutError:
                        self.drop(conn)
        except Exception:
            # Upgraded: an HTTP answer cannot follow, so the socket closes instead.
            log.exception("realtime: a connection of %s/%s failed", conn.app, conn.user)
            if not conn.closed:
                self._forget(conn)
                conn.closed = True
                conn.wake()
                await self._close(conn, CLOSE_INTERNAL, b"internal error")
        finally:
            if not conn.closed:
                self._forget(conn)
                conn.closed = True
        return ws

    async def _client_message(self, conn: Conn, raw: str) -> None:
        m: Any = None
        try:
            m = parse_client_frame(raw)
            op = m.get("op")
            if op == "ping":
                conn.send({"op": "pong"})
            elif op == "subscribe":
                await self.subscribe(conn, m.get("feed"), m.get("since"))
            elif op == "unsubscribe":
                feed = m.get("feed")
                if isinstance(feed, str) and feed in conn.feeds:
                    conn.unfollow(feed)
                    self.dispatcher.remove(conn, feed)
                conn.send({"op": "unsubscribed", "feed": feed})
            else:
                raise InvalidRequest("op must be subscribe, unsubscribe or ping", field="op")
        except DEPENDENCY_DOWN as e:
            log.warning("realtime: dependency down: %r", e)
            self._send_error(conn, m, as_unavailable(e))
        except HubError as e:
            self._send_error(conn, m, e)

    @staticmethod
    def _send_error(conn: Conn, m: Any, e: HubError) -> None:
        err: dict[str, Any] = {"op": "error", "code": e.code, "message": e.message}
        if isinstance(m, dict) and isinstance(m.get("feed"), str):
            err["feed"] = m["feed"]
        conn.send(err)

    async def subscribe(self, conn: Conn, feed: object, since: object) -> None:
        group_name, user = split_feed_id(feed)
        group = self.hub.group(group_name)
        feed = f"{group_name}:{user}"
        if user != conn.user:
            raise Forbidden("a token subscribes only to its own user's feeds", field="feed")
        since_t = None
        if since is not None:
            since_t = parse_cursor(since) if isinstance(since, str) else None
            if since_t is None:
                raise InvalidRequest("since must be a cursor this server sent", field="since")
        # Live first (buffered), then the log: a change in between is in one or both.
        following = feed in conn.feeds  # a subscribe again keeps the first one if this one fails
        conn.buffers[feed] = []
        conn.feeds.add(feed)
        self.dispatcher.add(conn, feed)
        try:
            await ensure_built(self.hub, conn.app, group, user)
            newest = await self.log.set_online(conn.app, feed)
            missed: list[dict[str, Any]] = []
            deleted: list[bytes] = []
            complete = True
            cursor = newest
            if since is not None:
                rep = await self.log.replay(conn.app, feed, str(since), self.replay_limit)
                complete = rep.complete
                if rep.complete:
                    cursor = rep.changes[-1].cursor if rep.changes else str(since)
                    last_change: dict[str, str] = {}
                    for ch in rep.changes:
                        for i in ch.ids:
                            last_change.pop(i, None)
                            last_change[i] = ch.cursor
                    current = await self.view.entries(conn.app, feed, list(last_change)) if last_change else {}
                    for i, c in last_change.items():
                        if i in current:
                            missed.append(current[i])
                        else:
                            deleted.append(dumps({"op": "deleted", "feed": feed, "ids": [i], "cursor": c}))
                else:
                    cursor = rep.last
            counts = await self.view.counts(conn.app, feed)
        except BaseException:
            conn.buffers.pop(feed, None)
            if not following:  # failed (an outage): no live frames for a feed never subscribed
                conn.unfollow(feed)
                self.dispatcher.remove(conn, feed)
            raise
        if conn.closed:
            return
        conn.send({"op": "subscribed", "feed": feed, "missed": missed, "complete": complete, **counts,
                   "cursor": cursor or None})
        for d in deleted:
            conn.push(d)
        after = (parse_cursor(cursor) if cursor else None) or (0, 0)
        if conn.after is None:
            conn.after = {}
        conn.after[feed] = after
        for c, data in conn.buffers.pop(feed, []):
            if c > after:
                conn.push(data)
