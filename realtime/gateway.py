"""The websocket gateway, ``GET /v1/realtime?token=`` (docs/api.md, Websocket).

- realtime/handshake.py: token and Origin checks;
- realtime/conn.py: one socket, its bounded send queue (a full queue drops that client,
  close code 4008, without slowing the others);
- realtime/dispatch.py: the channels of the feeds this process's sockets follow (through
  realtime/subscriber.py, sharded pub/sub), a map (app, feed) -> local connections, each
  change turned into one frame written to every socket of its feed;
- realtime/inbound.py: client frames parsed within bounds (size, nesting);
- realtime/replay.py: what a ``subscribe`` with ``since`` missed, from the change log;
- here: the connection's life and its client frames (subscribe, unsubscribe, ping).

Nothing a client sends ends as HTTP once the socket is upgraded: a dependency outage is an
``unavailable`` error frame (the client may retry the subscribe), a bug closes the socket
with 1011 (logged).

``subscribe`` with ``since`` registers the socket for live messages first (buffered),
replays the feed's change log after ``since``, sends ``subscribed`` and then the buffered
messages newer than the replay; later live messages not newer than it are dropped too:
nothing is lost or doubled. When the process's subscription to a feed was lost and
restored (a Redis connection drop, a failover), each of its sockets gets that same answer
again, as if it had resubscribed with the last cursor it was sent (``complete: false``
when the log no longer covers it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from hub.config import FeedGroup, Settings
from hub.core import Hub
from hub.domain.fields import split_feed_id
from hub.errors import Forbidden, HubError, InvalidRequest
from hub.ops.rebuild import ensure_built
from hub.storage.changes import ChangeLog, parse_cursor
from hub.storage.outage import DEPENDENCY_DOWN, as_unavailable
from realtime.conn import CLOSE_EXPIRED, CLOSE_TOO_SLOW, Conn, State, dumps
from realtime.dispatch import Dispatcher, Key
from realtime.frames import FeedView
from realtime.handshake import authenticate, origin_allowed
from realtime.inbound import parse_client_frame
from realtime.replay import replay

log = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE = 16 * 1024
# 1011: the server met an unexpected condition (RFC 6455).
CLOSE_INTERNAL = 1011
RESUMES = 32  # sockets resumed at once after a lost subscription
REPLAY_WAIT_S = 10.0  # how long a resume waits for a subscribe's replay of the same feed

__all__ = ["CLOSE_EXPIRED", "CLOSE_TOO_SLOW", "Conn", "Gateway", "origin_allowed"]


class Gateway:
    """The gateway of one started app: built when its Hub exists (``realtime.setup``)."""

    def __init__(self, settings: Settings, hub: Hub, *, queue_size: int = 256, heartbeat: float = 30.0,
                 replay_limit: int = 100) -> None:
        self.settings = settings
        self.hub = hub
        self.queue_size = queue_size
        self.heartbeat = heartbeat
        self.replay_limit = replay_limit
        self.keys = {a.id: a.key for a in settings.apps.values()}
        self.conns: set[Conn] = set()
        self.dropped = 0
        self.log = ChangeLog(hub.redis, settings.redis.key_prefix, cache_days=settings.fanout.cache_days)
        self.view = FeedView(hub)
        self.dispatcher = Dispatcher(settings.redis.url, self.log, self.view, nodes=settings.redis.nodes)
        self.metrics = hub.metrics
        self.dispatcher.frames = self.metrics.ws_frames
        self.dispatcher.messages = self.metrics.rt_messages
        self.dispatcher.on_resume = self._resume
        self._resumes = asyncio.Semaphore(RESUMES)

    @property
    def subs(self) -> dict[Key, set[Conn]]:
        return self.dispatcher.subs

    @property
    def delivered(self) -> int:
        return self.dispatcher.delivered

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        await self.dispatcher.start()

    async def stop(self) -> None:
        await self.dispatcher.stop()
        for c in list(self.conns):
            with contextlib.suppress(Exception):
                await c.ws.close(code=1001, message=b"server shutting down")

    # -- connections -----------------------------------------------------------------------

    def drop(self, conn: Conn) -> None:
        """A client that does not read: forget it now, close it in the background."""
        if not conn.open:
            return
        self.dropped += 1
        self.metrics.ws_dropped.labels("slow").inc()
        self._forget(conn)
        conn.begin_close(discard_queue=True)
        asyncio.get_running_loop().create_task(self._close(conn, CLOSE_TOO_SLOW, b"send queue full"))

    @staticmethod
    async def _close(conn: Conn, code: int, message: bytes) -> None:
        try:
            await asyncio.wait_for(conn.ws.close(code=code, message=message), 2)
        except (asyncio.TimeoutError, Exception):
            pass
        # Whatever happened, the socket goes (a client that never answers the close frame
        # would hold it open; aiohttp's close waits for that answer).
        transport = conn.request.transport
        if transport is not None:
            transport.abort()
        conn.state = State.CLOSED

    def _forget(self, conn: Conn) -> None:
        """No more frames for ``conn`` (idempotent)."""
        self.conns.discard(conn)
        for feed in list(conn.feeds):
            self.dispatcher.remove(conn, feed)
            conn.unfollow(feed)
        if conn.timer is not None:
            conn.timer.cancel()

    def _expire(self, conn: Conn) -> None:
        if not conn.open:
            return
        self._forget(conn)
        conn.begin_close()
        self.metrics.ws_dropped.labels("expired").inc()
        asyncio.get_running_loop().create_task(self._close(conn, CLOSE_EXPIRED, b"token expired"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        app, user, exp = authenticate(request, self.settings, self.keys)
        ws = web.WebSocketResponse(heartbeat=self.heartbeat, max_msg_size=MAX_CLIENT_MESSAGE, compress=False)
        if not ws.can_prepare(request).ok:
            raise InvalidRequest("a websocket upgrade is required")
        await ws.prepare(request)
        conn = Conn(ws, request, app, user, exp, queue_size=self.queue_size, on_full=self.drop,
                    frames=self.metrics.ws_frames)
        self.conns.add(conn)
        self.metrics.ws_connections.inc()
        conn.timer = asyncio.get_running_loop().call_later(max(0.0, exp - time.time()), self._expire, conn)
        try:
            await self._read(conn)
        except Exception:
            # Upgraded: an HTTP answer cannot follow, so the socket closes instead.
            log.exception("realtime: a connection of %s/%s failed", conn.app, conn.user)
            self.metrics.ws_dropped.labels("error").inc()
            if conn.open:
                self._forget(conn)
                conn.begin_close()
                await self._close(conn, CLOSE_INTERNAL, b"internal error")
        finally:
            # Also a connection whose writer failed (CLOSED, never forgotten until now).
            self._forget(conn)
            conn.state = State.CLOSED
            self.metrics.ws_connections.dec()
        return ws

    async def _read(self, conn: Conn) -> None:
        """The client's frames, one at a time, until it leaves or the connection closes."""
        async for msg in conn.ws:
            if not conn.open:
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
            self.metrics.dependency_error(e)
            self._send_error(conn, m, as_unavailable(e))
        except HubError as e:
            self._send_error(conn, m, e)

    @staticmethod
    def _send_error(conn: Conn, m: Any, e: HubError) -> None:
        err: dict[str, Any] = {"op": "error", "code": e.code, "message": e.message}
        if isinstance(m, dict) and isinstance(m.get("feed"), str):
            err["feed"] = m["feed"]
        conn.send(err)

    def _target(self, conn: Conn, feed: object, since: object) -> tuple[FeedGroup, str, str | None]:
        """``(group, user, since)`` of a subscribe frame, or an InvalidRequest / Forbidden."""
        group_name, user = split_feed_id(feed)
        group = self.hub.group(group_name)
        if user != conn.user:
            raise Forbidden("a token subscribes only to its own user's feeds", field="feed")
        if since is None:
            return group, user, None
        if not isinstance(since, str) or parse_cursor(since) is None:
            raise InvalidRequest("since must be a cursor this server sent", field="since")
        return group, user, since

    async def subscribe(self, conn: Conn, feed: object, since: object) -> None:
        """Live first (held back), then the log (realtime/replay.py), then ``subscribed``
        and the held frames newer than the replay: a change in between is sent once."""
        group, user, since_cursor = self._target(conn, feed, since)
        feed_id = group.feed_of(user)
        # A subscribe again keeps the first one if this one fails.
        was_following = conn.start_replay(feed_id)
        self.dispatcher.add(conn, feed_id)
        try:
            await self.dispatcher.watch(conn.app, feed_id)  # live changes arrive from here on
            await ensure_built(self.hub, conn.app, group, user)
            newest = await self.log.set_online(conn.app, feed_id)
            missed = await replay(self.log, self.view, conn.app, feed_id, since_cursor, newest, self.replay_limit)
            counts = await self.view.counts(conn.app, feed_id)
        except BaseException:
            conn.abandon_replay(feed_id, was_following=was_following)
            if not was_following:  # failed (an outage): no live frames for a feed never subscribed
                self.dispatcher.remove(conn, feed_id)
            raise
        if not conn.open:
            return
        conn.send({"op": "subscribed", "feed": feed_id, "missed": missed.entries, "complete": missed.complete,
                   **counts, "cursor": missed.cursor or None})
        for frame in missed.deleted:
            conn.push(frame)
        covered = (parse_cursor(missed.cursor) if missed.cursor else None) or (0, 0)
        for frame in conn.end_replay(feed_id, covered):
            conn.push(frame)

    def _resume(self, conn: Conn, feed: str) -> None:
        """The feed's subscription was lost and is back: answer as a resubscribe from the
        last cursor ``conn`` was sent (the changes in between come from the log)."""
        if conn.open and feed in conn.feeds:
            asyncio.get_running_loop().create_task(self._resume_one(conn, feed))

    async def _resume_one(self, conn: Conn, feed: str) -> None:
        async with self._resumes:
            # A subscribe of this feed replaying now ends first (it gives up within 10 s).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(conn.replay_ended(feed), REPLAY_WAIT_S)
            f = conn.feeds.get(feed)
            if conn.open and f is not None:
                since = "%d-%d" % (f.after or (0, 0))
                await self._client_message(conn, dumps({"op": "subscribe", "feed": feed, "since": since}).decode())
