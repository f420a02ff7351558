"""Each process subscribes to the channels of the feeds its own sockets follow, and fans
each change out to those sockets.

Channels: one per feed (``Keys.channel``, hub/storage/changes.py), subscribed through
realtime/subscriber.py (sharded pub/sub) when the first local socket follows the feed,
and unsubscribed ``LINGER`` seconds after the last one left (a socket that comes back
meanwhile costs nothing). So a process decodes only the changes of its own sockets'
feeds, and more processes add delivery capacity. A subscription that was lost and
restored (a connection drop, a failover) calls ``on_resume`` for every local socket of
its feed: the gateway resumes them from the feed's change stream.

Messages are handled in batches and the reader never waits for frames to be built: each
batch gets a task that fetches what its frames need (entries and counts, once per feed
and batch) while later batches are read and fetched, and that delivers only after the
batch before it has delivered, so frames leave in the order Redis published them (per
feed: the change-log order). At most ``MAX_IN_FLIGHT`` batches are pending; beyond that
the reader waits.

Each frame is serialised once and pushed, as the same bytes, to every socket of its feed;
an entry is rendered once per feed and batch, as JSON text that every change of it in the
batch splices into its own frame (own cursor) without parsing it back (realtime/frames.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.storage.changes import REFRESH_EVERY, ChangeLog, parse_cursor
from hub.storage.outage import DEPENDENCY_DOWN, OutageLog
from hub.storage.redis import Keys
from realtime.conn import Conn, Cursor, dumps
from realtime.frames import FeedView, FramePieces
from realtime.subscriber import ShardedSubscriber

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64
LINGER = 5.0  # seconds a feed stays subscribed after its last local socket left
CONFIRM_TIMEOUT = 5.0  # seconds a subscribe waits for Redis to confirm the feed's channel

Key = tuple[str, str]  # (app, feed)


class Dispatcher:
    def __init__(self, url: str, changelog: ChangeLog, view: FeedView, *, nodes: tuple[str, ...] = ()) -> None:
        self.url = url
        self.log = changelog
        self.view = view
        self.subs: dict[Key, set[Conn]] = {}
        self.delivered = 0
        self.decoded = 0  # messages received and decoded by this process
        self.frames: Any = None  # hub_ws_frames_total{op}, set by the gateway
        self.messages: Any = None  # hub_realtime_messages_total, set by the gateway
        self.on_resume: Callable[[Conn, str], None] | None = None  # set by the gateway
        self._channels: dict[str, Key] = {}  # subscribed (or being subscribed) channel -> feed
        self._idle: dict[Key, float] = {}  # feed without local sockets -> when to unsubscribe
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._prev: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Redis down: one line when the subscription is lost and one when it is back, not
        # a traceback per resubscribe attempt (one a second); likewise for the refresh.
        self.outage = OutageLog("Redis (realtime subscription)", log)
        self._refresh_outage = OutageLog("Redis (realtime online feeds)", log)
        self.subscriber = ShardedSubscriber(url, self.outage, self._on_messages, self._on_resumed, nodes=nodes)
        self.ready = self.subscriber.ready

    async def start(self) -> None:
        await self.subscriber.start()
        self._tasks = [asyncio.create_task(self._refresh()), asyncio.create_task(self._sweep())]
        await asyncio.wait_for(self.ready.wait(), 10)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.subscriber.stop()

    # -- who wants what ------------------------------------------------------------------

    def add(self, conn: Conn, feed: str) -> None:
        self.subs.setdefault((conn.app, feed), set()).add(conn)
        self._idle.pop((conn.app, feed), None)

    async def watch(self, app: str, feed: str) -> None:
        """Until the feed's channel is subscribed: changes published from now on arrive."""
        channel = Keys(self.log.prefix, app).channel(feed)
        self._channels[channel] = (app, feed)
        try:
            await asyncio.wait_for(self.subscriber.subscribe(channel), CONFIRM_TIMEOUT)
        except asyncio.TimeoutError:
            raise RedisTimeoutError("Redis did not confirm a realtime subscription in time") from None

    def remove(self, conn: Conn, feed: str) -> None:
        subs = self.subs.get((conn.app, feed))
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subs[(conn.app, feed)]
                self._idle[(conn.app, feed)] = time.monotonic() + LINGER

    async def _sweep(self) -> None:
        """Unsubscribe the feeds whose last local socket left ``LINGER`` seconds ago."""
        while True:
            await asyncio.sleep(LINGER / 5)
            now = time.monotonic()
            for key, when in list(self._idle.items()):
                if when <= now and key not in self.subs:
                    del self._idle[key]
                    channel = Keys(self.log.prefix, key[0]).channel(key[1])
                    self._channels.pop(channel, None)
                    self.subscriber.unsubscribe(channel)

    def _on_resumed(self, channels: list[str]) -> None:
        """Subscribed again after a loss: every local socket of those feeds resumes."""
        for channel in channels:
            key = self._channels.get(channel)
            if key is None or self.on_resume is None:
                continue
            for conn in list(self.subs.get(key, ())):
                self.on_resume(conn, key[1])

    # -- reading -------------------------------------------------------------------------

    async def _on_messages(self, batch: list[bytes]) -> None:
        await self._slots.acquire()
        self._prev = asyncio.create_task(self._dispatch(batch, self._prev))

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            by_app: dict[str, list[str]] = {}
            for app, feed in list(self.subs):
                by_app.setdefault(app, []).append(feed)
            for app, feeds in by_app.items():
                try:
                    await self.log.refresh_online(app, feeds)
                except DEPENDENCY_DOWN as e:
                    self._refresh_outage.failed(e)
                except Exception:
                    log.exception("refreshing online feeds failed")
                else:
                    self._refresh_outage.recovered()

    # -- one batch -------------------------------------------------------------------------

    async def _dispatch(self, batch: list[bytes], prev: asyncio.Task[None] | None) -> None:
        try:
            wanted, entries, counts = await self._fetch(batch)
            if prev is not None and not prev.done():
                with contextlib.suppress(BaseException):
                    await asyncio.shield(prev)  # its frames go first
            self._deliver_batch(wanted, entries, counts)
        except Exception:
            log.exception("realtime: dispatching a batch failed")
        finally:
            self._slots.release()

    async def _fetch(self, batch: list[bytes]) -> tuple[list[dict[str, Any]], dict[Key, Any], dict[Key, Any]]:
        wanted: list[dict[str, Any]] = []
        self.decoded += len(batch)
        if self.messages is not None:
            self.messages.inc(len(batch))
        for msg in batch:
            try:
                m = json.loads(msg)
            except (ValueError, TypeError):
                continue
            if (m.get("app"), m.get("feed")) in self.subs:
                wanted.append(m)
        entry_ids: dict[Key, list[str]] = {}
        for m in wanted:
            if m.get("op") == "entry":
                entry_ids.setdefault((m["app"], m["feed"]), []).extend(m.get("ids", []))
        keys = list(entry_ids)
        if not keys:
            return wanted, {}, {}
        # What the frames need, once per feed and batch, for all the batch's feeds together.
        results = await self.view.frame_parts([(a, f, entry_ids[(a, f)]) for a, f in keys])
        entries: dict[Key, Any] = {}
        counts: dict[Key, Any] = {}
        for key, r in zip(keys, results):
            entries[key], counts[key] = (r, r) if isinstance(r, BaseException) else r
        return wanted, entries, counts

    def _deliver_batch(self, wanted: list[dict[str, Any]], entries: dict[Key, Any], counts: dict[Key, Any]) -> None:
        shared: dict[Key, FramePieces] = {}  # per feed: what its entry frames in this batch share
        for m in wanted:
            key = (m["app"], m["feed"])
            conns = self.subs.get(key)
            if not conns:
                continue
            op = m.get("op")
            cursor = m.get("cursor")
            if op == "counts":
                data = dumps({"op": "counts", "feed": m["feed"], "unseen": m["unseen"], "unread": m["unread"]})
                self.deliver(conns, m["feed"], None, data, "counts")
            elif op in ("archived", "unarchived"):  # hub/ops/archive.py, like counts: no cursor
                data = dumps({"op": op, "feed": m["feed"], "ids": m.get("ids", []), "unseen": m["unseen"],
                              "unread": m["unread"]})
                self.deliver(conns, m["feed"], None, data, op)
            elif op == "entry":
                es, cs = entries.get(key), counts.get(key)
                if isinstance(es, BaseException) or isinstance(cs, BaseException) or es is None or cs is None:
                    log.warning("realtime: could not build frame for %s: %r %r", key, es, cs)
                    continue
                ctuple = parse_cursor(cursor) if isinstance(cursor, str) else None
                pieces = shared.get(key)
                if pieces is None:
                    pieces = shared[key] = FramePieces(m["feed"], cs)
                for i in m.get("ids", []):
                    if i in es:
                        data = pieces.frame(es[i], cursor)  # the entry's text spliced in
                        self.deliver(conns, m["feed"], ctuple, data, "entry")
            elif op == "deleted":
                data = dumps({"op": "deleted", "feed": m["feed"], "ids": m.get("ids", []), "cursor": cursor})
                self.deliver(conns, m["feed"], parse_cursor(cursor) if isinstance(cursor, str) else None, data,
                             "deleted")

    def deliver(self, conns: set[Conn], feed: str, cursor: Cursor | None, data: bytes, op: str = "") -> None:
        for c in list(conns):
            c.push_live(feed, cursor, data)
        self.delivered += len(conns)
        if self.frames is not None:  # one increment per change, however many sockets
            self.frames.labels(op).inc(len(conns))
