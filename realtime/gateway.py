"""The websocket gateway, ``GET /v1/realtime?token=`` (contract section 5).

- One Redis pub/sub subscription per process (channel ``<prefix>:rt``, see
  hub/storage/changes.py), a map (app, feed) -> local connections, and each message turned
  into one frame (entry body and counts fetched once, JSON encoded once) written to every
  socket of that feed.
- Every socket has a bounded send queue drained by a writer task that exists only while
  there is something to send (idle sockets hold no task). A full queue drops that client
  (close code 4008) without slowing the others.
- ``subscribe`` with ``since`` registers the socket for live messages first (buffered),
  replays the feed's change log after ``since``, sends ``subscribed`` and then the
  buffered messages newer than the replay: nothing is lost or doubled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from aiohttp import WSMsgType, web

from hub.config import FeedGroup, Settings
from hub.core import Hub
from hub.domain.activity import split_feed_id
from hub.domain.tokens import verify_token
from hub.errors import Forbidden, HubError, InvalidRequest
from hub.ops.reads import MAX_GROUP_ACTIVITIES, group_entry
from hub.ops.rebuild import ensure_built
from hub.storage.changes import REFRESH_EVERY, ChangeLog, parse_cursor
from hub.storage.feedcache import GroupState

log = logging.getLogger(__name__)

CLOSE_EXPIRED = 4001
CLOSE_TOO_SLOW = 4008
MAX_CLIENT_MESSAGE = 16 * 1024


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _origin_tuple(origin: str) -> tuple[str, str, int] | None:
    try:
        u = urlsplit(origin)
        port = u.port
    except ValueError:
        return None
    if u.scheme not in ("http", "https") or not u.hostname or u.path or u.query or u.fragment:
        return None
    if u.username is not None or u.password is not None:
        return None
    return u.scheme, u.hostname.lower(), port or (443 if u.scheme == "https" else 80)


def origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    """The whole origin (scheme, host, port) must match one allowed origin."""
    got = _origin_tuple(origin)
    return got is not None and any(got == _origin_tuple(a) for a in allowed)


class Conn:
    """One websocket: its bounded send queue and the feeds it follows."""

    __slots__ = ("ws", "app", "user", "exp", "queue", "writer", "buffers", "feeds", "closed", "timer", "gw")

    def __init__(self, gw: Gateway, ws: web.WebSocketResponse, app: str, user: str, exp: int) -> None:
        self.gw = gw
        self.ws = ws
        self.app = app
        self.user = user
        self.exp = exp
        self.queue: collections.deque[bytes] = collections.deque()
        self.writer: asyncio.Task[None] | None = None
        self.buffers: dict[str, list[tuple[tuple[int, int], bytes]]] = {}
        self.feeds: set[str] = set()
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None

    def push(self, data: bytes) -> None:
        if self.closed:
            return
        if len(self.queue) >= self.gw.queue_size:
            self.gw.drop(self)
            return
        self.queue.append(data)
        if self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    def push_live(self, feed: str, cursor: tuple[int, int] | None, data: bytes) -> None:
        buf = self.buffers.get(feed)
        if buf is not None and cursor is not None:
            buf.append((cursor, data))
        else:
            self.push(data)

    def send(self, obj: Any) -> None:
        self.push(_dumps(obj))

    async def _write(self) -> None:
        try:
            while self.queue and not self.closed:
                await self.ws.send_frame(self.queue.popleft(), WSMsgType.TEXT)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            self.closed = True
        finally:
            self.writer = None


class Gateway:
    def __init__(self, settings: Settings, get_hub: Callable[[web.Application], Hub], *, queue_size: int = 256,
                 heartbeat: float = 30.0, replay_limit: int = 100) -> None:
        self.settings = settings
        self.get_hub = get_hub
        self.queue_size = queue_size
        self.heartbeat = heartbeat
        self.replay_limit = replay_limit
        self.keys = {a.id: a.key for a in settings.apps.values()}
        self.subs: dict[tuple[str, str], set[Conn]] = {}
        self.conns: set[Conn] = set()
        self.dropped = 0
        self.delivered = 0
        self.hub: Hub
        self.log: ChangeLog
        self._tasks: list[asyncio.Task[None]] = []
        self._sub_redis: aioredis.Redis | None = None
        self._ready = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, app: web.Application) -> None:
        self.hub = self.get_hub(app)
        self.log = ChangeLog(self.hub.redis, self.settings.redis.key_prefix)
        # A client of its own for the subscription: it blocks on reads (no socket timeout).
        self._sub_redis = aioredis.Redis.from_url(self.settings.redis.url, decode_responses=False,
                                                  socket_connect_timeout=2, health_check_interval=0)
        self._ready = asyncio.Event()
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._refresh())]
        await asyncio.wait_for(self._ready.wait(), 10)

    async def stop(self, app: web.Application) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for c in list(self.conns):
            with contextlib.suppress(Exception):
                await c.ws.close(code=1001, message=b"server shutting down")
        if self._sub_redis is not None:
            await self._sub_redis.aclose()

    async def _listen(self) -> None:
        assert self._sub_redis is not None
        while True:
            try:
                ps = self._sub_redis.pubsub(ignore_subscribe_messages=True)
                await ps.subscribe(self.log.channel)
                self._ready.set()
                try:
                    while True:
                        msg = await ps.get_message(timeout=None)
                        if msg is None:
                            continue
                        batch = [msg]
                        while len(batch) < 1000:
                            nxt = await ps.get_message(timeout=0)
                            if nxt is None:
                                break
                            batch.append(nxt)
                        await self._dispatch(batch)
                finally:
                    with contextlib.suppress(Exception):
                        await ps.aclose()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("realtime subscription failed; resubscribing")
                await asyncio.sleep(1)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            by_app: dict[str, list[str]] = {}
            for app, feed in list(self.subs):
                by_app.setdefault(app, []).append(feed)
            for app, feeds in by_app.items():
                try:
                    await self.log.refresh_online(app, feeds)
                except Exception:
                    log.exception("refreshing online feeds failed")

    # -- messages from Redis ----------------------------------------------------------

    async def _dispatch(self, batch: list[dict[str, Any]]) -> None:
        wanted: list[dict[str, Any]] = []
        for msg in batch:
            try:
                m = json.loads(msg["data"])
            except (ValueError, TypeError, KeyError):
                continue
            if (m.get("app"), m.get("feed")) in self.subs:
                wanted.append(m)
        if not wanted:
            return
        # Fetch what the frames need once per feed and batch, concurrently.
        entry_ids: dict[tuple[str, str], list[str]] = {}
        for m in wanted:
            if m.get("op") == "entry":
                entry_ids.setdefault((m["app"], m["feed"]), []).extend(m.get("ids", []))
        need_counts = {(m["app"], m["feed"]) for m in wanted if m.get("op") == "entry"}
        keys_e = list(entry_ids)
        keys_c = list(need_counts)
        results = await asyncio.gather(
            *(self.entries(a, f, entry_ids[(a, f)]) for a, f in keys_e),
            *(self.counts(a, f) for a, f in keys_c),
            return_exceptions=True,
        )
        entries = {k: r for k, r in zip(keys_e, results[: len(keys_e)])}
        counts = {k: r for k, r in zip(keys_c, results[len(keys_e):])}
        for m in wanted:
            key = (m["app"], m["feed"])
            conns = self.subs.get(key)
            if not conns:
                continue
            op = m.get("op")
            cursor = m.get("cursor")
            if op == "counts":
                data = _dumps({"op": "counts", "feed": m["feed"], "unseen": m["unseen"], "unread": m["unread"]})
                ctuple = None
            elif op == "entry":
                es, cs = entries.get(key), counts.get(key)
                if isinstance(es, BaseException) or isinstance(cs, BaseException) or es is None or cs is None:
                    log.warning("realtime: could not build frame for %s: %r %r", key, es, cs)
                    continue
                for i in m.get("ids", []):
                    if i in es:
                        ctuple = parse_cursor(cursor)
                        data = _dumps({"op": "entry", "feed": m["feed"], "entry": es[i], "cursor": cursor, **cs})
                        self._deliver(conns, m["feed"], ctuple, data)
                continue
            elif op == "deleted":
                data = _dumps({"op": "deleted", "feed": m["feed"], "ids": m.get("ids", []), "cursor": cursor})
                ctuple = parse_cursor(cursor)
            else:
                continue
            self._deliver(conns, m["feed"], ctuple, data)

    def _deliver(self, conns: set[Conn], feed: str, cursor: tuple[int, int] | None, data: bytes) -> None:
        for c in list(conns):
            c.push_live(feed, cursor, data)
        self.delivered += len(conns)

    # -- building entries ---------------------------------------------------------------

    def _group(self, feed: str) -> FeedGroup:
        group, _ = split_feed_id(feed)
        return self.hub.group(group)

    async def entries(self, app: str, feed: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Current entries of a feed by id (flat: activities; aggregated: groups)."""
        group = self._group(feed)
        ids = list(dict.fromkeys(ids))
        if not group.is_aggregated:
            bodies = await self.hub.activities.get_many(app, ids)
            return {i: bodies[i].to_json() for i in ids if i in bodies}
        k = self.hub.feeds.keys(app)
        raws = await self.hub.redis.hmget(k.agg_state(feed), ids)
        states = []
        for gid, raw in zip(ids, raws):
            if raw:
                st = json.loads(raw)
                states.append(GroupState(gid, st["k"], st["m"], st["c"], st["n"]))
        if not states:
            return {}
        newest = {st.id: sorted(st.members, reverse=True)[:MAX_GROUP_ACTIVITIES] for st in states}
        bodies = await self.hub.activities.get_many(app, [i for v in newest.values() for i in v])
        marks = await self.hub.marks.load(app, feed)
        notification = group.kind == "notification"
        return {st.id: group_entry(st, [bodies[i] for i in newest[st.id] if i in bodies], marks, notification)
                for st in states}

    async def counts(self, app: str, feed: str) -> dict[str, int]:
        group = self._group(feed)
        k = self.hub.feeds.keys(app)
        if group.is_aggregated:
            return await self.hub.marks.counts(app, feed, k.agg(feed), k.agg_state(feed))
        return await self.hub.marks.counts(app, feed, k.feed(feed), None)

    # -- connections -----------------------------------------------------------------------

    def drop(self, conn: Conn) -> None:
        """A client that does not read: forget it now, close it in the background."""
        if conn.closed:
            return
        self.dropped += 1
        self._forget(conn)
        conn.closed = True
        conn.queue.clear()
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
        for feed in conn.feeds:
            subs = self.subs.get((conn.app, feed))
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self.subs[(conn.app, feed)]
        conn.feeds.clear()
        conn.buffers.clear()
        if conn.timer is not None:
            conn.timer.cancel()

    def _expire(self, conn: Conn) -> None:
        if conn.closed:
            return
        self._forget(conn)
        conn.closed = True
        asyncio.get_running_loop().create_task(self._close(conn, CLOSE_EXPIRED, b"token expired"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        claims = verify_token(request.query.get("token", ""), self.keys, now=int(time.time()))
        origin = request.headers.get("Origin")
        # Browsers always send Origin on a websocket; clients without one are not browsers.
        if origin is not None and not origin_allowed(origin, self.settings.apps[claims.app].allowed_origins):
            raise Forbidden("this Origin is not in the app's allowed_origins", field="Origin")
        ws = web.WebSocketResponse(heartbeat=self.heartbeat, max_msg_size=MAX_CLIENT_MESSAGE, compress=False)
        if not ws.can_prepare(request).ok:
            raise InvalidRequest("a websocket upgrade is required")
        await ws.prepare(request)
        conn = Conn(self, ws, claims.app, claims.user, claims.exp)
        self.conns.add(conn)
        conn.timer = asyncio.get_running_loop().call_later(max(0.0, claims.exp - time.time()), self._expire, conn)
        try:
            async for msg in ws:
                if conn.closed:
                    break
                if msg.type != WSMsgType.TEXT:
                    continue
                await self._client_message(conn, msg.data)
        finally:
            if not conn.closed:
                self._forget(conn)
                conn.closed = True
        return ws

    async def _client_message(self, conn: Conn, raw: str) -> None:
        try:
            m = json.loads(raw)
        except ValueError:
            conn.send({"op": "error", "code": "invalid_json", "message": "frames are JSON objects"})
            return
        op = m.get("op") if isinstance(m, dict) else None
        try:
            if op == "ping":
                conn.send({"op": "pong"})
            elif op == "subscribe":
                await self.subscribe(conn, m.get("feed"), m.get("since"))
            elif op == "unsubscribe":
                feed = m.get("feed")
                if isinstance(feed, str) and feed in conn.feeds:
                    conn.feeds.discard(feed)
                    conn.buffers.pop(feed, None)
                    subs = self.subs.get((conn.app, feed))
                    if subs is not None:
                        subs.discard(conn)
                        if not subs:
                            del self.subs[(conn.app, feed)]
                conn.send({"op": "unsubscribed", "feed": feed})
            else:
                raise InvalidRequest("op must be subscribe, unsubscribe or ping", field="op")
        except HubError as e:
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
        conn.buffers[feed] = []
        conn.feeds.add(feed)
        self.subs.setdefault((conn.app, feed), set()).add(conn)
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
                    current = await self.entries(conn.app, feed, list(last_change)) if last_change else {}
                    for i, c in last_change.items():
                        if i in current:
                            missed.append(current[i])
                        else:
                            deleted.append(_dumps({"op": "deleted", "feed": feed, "ids": [i], "cursor": c}))
                else:
                    cursor = rep.last
            counts = await self.counts(conn.app, feed)
        except BaseException:
            conn.buffers.pop(feed, None)
            raise
        if conn.closed:
            return
        conn.send({"op": "subscribed", "feed": feed, "missed": missed, "complete": complete, **counts,
                   "cursor": cursor or None})
        for d in deleted:
            conn.push(d)
        after = parse_cursor(cursor) if cursor else (0, 0)
        for c, data in conn.buffers.pop(feed, []):
            if after is None or c > after:
                conn.push(data)
