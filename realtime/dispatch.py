"""One Redis pub/sub subscription per process, fanned out to the local sockets.

The listener reads change messages (``<prefix>:rt``, see hub/storage/changes.py) in
batches and never waits for frames to be built: each batch gets a task that fetches what
its frames need (entries and counts, once per feed and batch) while later batches are
read and fetched, and that delivers only after the batch before it has delivered, so
frames leave in the order Redis published them (per feed: the change-log order). At most
``MAX_IN_FLIGHT`` batches are pending; beyond that the listener waits.

Each frame is serialised once and pushed, as the same bytes, to every socket of its feed;
an entry is rendered once per feed and batch, as JSON text that every change of it in the
batch splices into its own frame (own cursor) without parsing it back (realtime/frames.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import redis.asyncio as aioredis

from hub.storage.changes import REFRESH_EVERY, ChangeLog, parse_cursor
from hub.storage.outage import DEPENDENCY_DOWN, OutageLog
from realtime.conn import Conn, Cursor, dumps
from realtime.frames import FeedView, FramePieces

log = logging.getLogger(__name__)

MAX_BATCH = 1000
MAX_IN_FLIGHT = 64

Key = tuple[str, str]  # (app, feed)


class Dispatcher:
    def __init__(self, url: str, changelog: ChangeLog, view: FeedView) -> None:
        self.url = url
        self.log = changelog
        self.view = view
        self.subs: dict[Key, set[Conn]] = {}
        self.delivered = 0
        self.frames: Any = None  # hub_ws_frames_total{op}, set by the gateway
        self.ready = asyncio.Event()
        self._redis: aioredis.Redis | None = None
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._tasks: list[asyncio.Task[None]] = []
        # Redis down: one line when the subscription is lost and one when it is back, not
        # a traceback per resubscribe attempt (one a second); likewise for the refresh.
        self.outage = OutageLog("Redis (realtime subscription)", log)
        self._refresh_outage = OutageLog("Redis (realtime online feeds)", log)

    async def start(self) -> None:
        # A client of its own for the subscription: it blocks on reads (no socket timeout).
        self._redis = aioredis.Redis.from_url(self.url, decode_responses=False, socket_connect_timeout=2,
                                              health_check_interval=0)
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._refresh())]
        await asyncio.wait_for(self.ready.wait(), 10)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._redis is not None:
            await self._redis.aclose()

    # -- who wants what ------------------------------------------------------------------

    def add(self, conn: Conn, feed: str) -> None:
        self.subs.setdefault((conn.app, feed), set()).add(conn)

    def remove(self, conn: Conn, feed: str) -> None:
        subs = self.subs.get((conn.app, feed))
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subs[(conn.app, feed)]

    # -- reading -------------------------------------------------------------------------

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                ps = self._redis.pubsub(ignore_subscribe_messages=True)
                await ps.subscribe(self.log.channel)
                self.outage.recovered()
                self.ready.set()
                prev: asyncio.Task[None] | None = None
                try:
                    while True:
                        msg = await ps.get_message(timeout=None)
                        if msg is None:
                            continue
                        batch = [msg]
                        while len(batch) < MAX_BATCH:
                            nxt = await ps.get_message(timeout=0)
                            if nxt is None:
                                break
                            batch.append(nxt)
                        await self._slots.acquire()
                        prev = asyncio.create_task(self._dispatch(batch, prev))
                finally:
                    with contextlib.suppress(Exception):
                        await ps.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            except asyncio.CancelledError:
                raise
            except DEPENDENCY_DOWN as e:
                self.outage.failed(e)
                await asyncio.sleep(1)
            except Exception:  # a bug, not an outage: loud
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
                except DEPENDENCY_DOWN as e:
                    self._refresh_outage.failed(e)
                except Exception:
                    log.exception("refreshing online feeds failed")
                else:
                    self._refresh_outage.recovered()

    # -- one batch -------------------------------------------------------------------------

    async def _dispatch(self, batch: list[dict[str, Any]], prev: asyncio.Task[None] | None) -> None:
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

    async def _fetch(self, batch: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[Key, Any], dict[Key, Any]]:
        wanted: list[dict[str, Any]] = []
        for msg in batch:
            try:
                m = json.loads(msg["data"])
            except (ValueError, TypeError, KeyError):
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
