"""One websocket connection: its bounded send queue and the feeds it follows.

Frames arrive as prebuilt bytes (serialised once per change, shared by every socket that
wants it) and are written with ``send_frame`` by a writer task that exists only while the
queue is not empty, so an idle socket holds no task. A full queue calls ``on_full`` (the
gateway drops the client) instead of blocking anyone.

Answers to the client's own frames (pong, subscribed, errors) are different: the gateway
waits for room (``wait_room``) before reading the client's next frame, so a client that
pipelines many pings is answered at the pace it reads instead of overflowing its queue;
a client that stops reading stops being read, and the live changes still drop it.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

CLOSE_EXPIRED = 4001
CLOSE_TOO_SLOW = 4008

Cursor = tuple[int, int]


def dumps(obj: Any) -> bytes:
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        # A lone surrogate a client sent (echoed in an error frame): escaped, still JSON.
        return json.dumps(obj, separators=(",", ":")).encode()


class Conn:
    __slots__ = ("ws", "app", "user", "exp", "queue", "queue_size", "on_full", "writer", "buffers", "after",
                 "feeds", "closed", "timer", "room")

    def __init__(self, ws: web.WebSocketResponse, app: str, user: str, exp: int, *, queue_size: int,
                 on_full: Callable[[Conn], None]) -> None:
        self.ws = ws
        self.app = app
        self.user = user
        self.exp = exp
        self.queue: collections.deque[bytes] = collections.deque()
        self.queue_size = queue_size
        self.on_full = on_full
        self.writer: asyncio.Task[None] | None = None
        # feed -> live frames held back while its subscription replays the log
        self.buffers: dict[str, list[tuple[Cursor, bytes]]] = {}
        # feed -> the cursor its ``subscribed`` frame covered: older live frames are repeats
        self.after: dict[str, Cursor] | None = None
        self.feeds: set[str] = set()
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        # Set while the reader waits for the queue to drain below half (wait_room).
        self.room: asyncio.Future[None] | None = None

    def push(self, data: bytes) -> None:
        if self.closed:
            return
        if len(self.queue) >= self.queue_size:
            self.on_full(self)
            return
        self.queue.append(data)
        if self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    def push_live(self, feed: str, cursor: Cursor | None, data: bytes) -> None:
        """A change from pub/sub: buffered during a replay, dropped if the replay covered it."""
        if cursor is not None:
            buf = self.buffers.get(feed)
            if buf is not None:
                buf.append((cursor, data))
                return
            if self.after is not None:
                after = self.after.get(feed)
                if after is not None and cursor <= after:
                    return
        self.push(data)

    def send(self, obj: Any) -> None:
        self.push(dumps(obj))

    def unfollow(self, feed: str) -> None:
        self.feeds.discard(feed)
        self.buffers.pop(feed, None)
        if self.after is not None:
            self.after.pop(feed, None)

    def has_room(self) -> bool:
        return len(self.queue) < self.queue_size // 2

    async def wait_room(self) -> None:
        """Until the queue is under half full (or the connection is closed)."""
        while not self.closed and not self.has_room():
            self.room = asyncio.get_running_loop().create_future()
            try:
                await self.room
            finally:
                self.room = None

    def wake(self) -> None:
        if self.room is not None and not self.room.done() and (self.closed or self.has_room()):
            self.room.set_result(None)

    async def _write(self) -> None:
        try:
            while self.queue and not self.closed:
                await self.ws.send_frame(self.queue.popleft(), WSMsgType.TEXT)
                self.wake()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            self.closed = True
        finally:
            self.writer = None
            self.wake()
