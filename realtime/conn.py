"""One websocket connection: its bounded send queue and the feeds it follows.

Frames arrive as prebuilt bytes (serialised once per change, shared by every socket that
wants it) and are written with ``send_frame`` by a writer task that exists only while the
queue is not empty, so an idle socket holds no task. A full queue calls ``on_full`` (the
gateway drops the client) instead of blocking anyone.

Answers to the client's own frames (pong, subscribed, errors) are different: the gateway
waits for room (``wait_room``) before reading the client's next frame, so a client that
pipelines many pings is answered at the pace it reads instead of overflowing its queue;
a client that stops reading stops being read, and the live changes still drop it.

State: one ``State`` for the connection (open, closing, closed) and one ``Follow`` per
followed feed (replaying, its live frames held back; or live, frames its replay already
covered dropped as repeats).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
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


class State(enum.Enum):
    OPEN = "open"  # frames are read and sent
    CLOSING = "closing"  # the gateway let it go (dropped, expired, failed); its close runs
    CLOSED = "closed"  # the socket is gone: the client left, a write failed, or our close ended


@dataclass(slots=True)
class Follow:
    """One feed a connection follows.

    ``held`` is a list while its subscription replays the log: live frames wait there
    (with their cursors) until ``subscribed`` is sent. ``after`` is the cursor that
    ``subscribed`` covered, then of the newest live frame sent: a live frame not newer is a
    repeat, and a resume after a lost subscription starts there. ``ended`` exists while
    a resume waits for the replay to end (most replays have no one waiting)."""

    held: list[tuple[Cursor, bytes]] | None = None
    after: Cursor | None = None
    ended: asyncio.Event | None = None

    def stop_holding(self) -> list[tuple[Cursor, bytes]]:
        """The replay is over (done or failed): the frames held, and waiters let go."""
        held, self.held = self.held or [], None
        if self.ended is not None:
            self.ended.set()
            self.ended = None
        return held


class Conn:
    __slots__ = ("ws", "request", "app", "user", "exp", "queue", "queue_size", "on_full", "writer", "feeds",
                 "state", "timer", "room", "frames")

    def __init__(self, ws: web.WebSocketResponse, request: web.BaseRequest, app: str, user: str, exp: int, *,
                 queue_size: int, on_full: Callable[[Conn], None], frames: Any = None) -> None:
        self.ws = ws
        self.request = request  # its transport is aborted when a close does not end in time
        self.app = app
        self.user = user
        self.exp = exp
        self.queue: collections.deque[bytes] = collections.deque()
        self.queue_size = queue_size
        self.on_full = on_full
        self.writer: asyncio.Task[None] | None = None
        self.feeds: dict[str, Follow] = {}
        self.state = State.OPEN
        self.timer: asyncio.TimerHandle | None = None
        # Set while the reader waits for the queue to drain below half (wait_room).
        self.room: asyncio.Future[None] | None = None
        self.frames = frames  # hub_ws_frames_total{op} for answers (live frames: dispatch.py)

    @property
    def open(self) -> bool:
        return self.state is State.OPEN

    def push(self, data: bytes) -> None:
        if self.state is not State.OPEN:
            return
        if len(self.queue) >= self.queue_size:
            self.on_full(self)
            return
        self.queue.append(data)
        if self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    def push_live(self, feed: str, cursor: Cursor | None, data: bytes) -> None:
        """A change from pub/sub: held during a replay, dropped if the replay covered it."""
        f = self.feeds.get(feed)
        if cursor is not None and f is not None:
            if f.held is not None:
                f.held.append((cursor, data))
                return
            if f.after is not None and cursor <= f.after:
                return
            f.after = cursor  # where a resume starts (Gateway._resume)
        self.push(data)

    def send(self, obj: Any) -> None:
        if self.frames is not None:
            self.frames.labels(obj.get("op", "")).inc()
        self.push(dumps(obj))

    # -- following feeds -------------------------------------------------------------------

    def start_replay(self, feed: str) -> bool:
        """Follow ``feed``, holding its live frames from now on; whether it was followed before."""
        f = self.feeds.get(feed)
        if f is None:
            self.feeds[feed] = Follow(held=[])
            return False
        f.held = []
        return True

    def abandon_replay(self, feed: str, *, was_following: bool) -> None:
        """A replay failed: a feed followed before stays as it was, a new one is unfollowed."""
        if was_following:
            f = self.feeds.get(feed)
            if f is not None:
                f.stop_holding()
        else:
            self.unfollow(feed)

    def end_replay(self, feed: str, after: Cursor) -> list[bytes]:
        """The replay covered ``after``: the frames held meanwhile that are newer, in order."""
        f = self.feeds.get(feed)
        if f is None:
            return []
        f.after = after
        return [data for c, data in f.stop_holding() if c > after]

    async def replay_ended(self, feed: str) -> None:
        """Return once no replay of ``feed`` runs (at once when none does)."""
        f = self.feeds.get(feed)
        if f is None or f.held is None:
            return
        if f.ended is None:
            f.ended = asyncio.Event()
        await f.ended.wait()

    def unfollow(self, feed: str) -> None:
        f = self.feeds.pop(feed, None)
        if f is not None:
            f.stop_holding()

    # -- closing ---------------------------------------------------------------------------

    def begin_close(self, *, discard_queue: bool = False) -> None:
        """Stop sending (CLOSING); ``discard_queue``: drop what is queued and stop the writer."""
        if self.state is State.OPEN:
            self.state = State.CLOSING
        if discard_queue:
            self.queue.clear()
            if self.writer is not None:
                self.writer.cancel()
        self.wake()

    # -- back-pressure on the client's own frames ---------------------------------------

    def has_room(self) -> bool:
        return len(self.queue) < self.queue_size // 2

    async def wait_room(self) -> None:
        """Until the queue is under half full (or the connection is no longer open)."""
        while self.state is State.OPEN and not self.has_room():
            self.room = asyncio.get_running_loop().create_future()
            try:
                await self.room
            finally:
                self.room = None

    def wake(self) -> None:
        if self.room is not None and not self.room.done() and (self.state is not State.OPEN or self.has_room()):
            self.room.set_result(None)

    async def _write(self) -> None:
        try:
            while self.queue and self.state is State.OPEN:
                await self.ws.send_frame(self.queue.popleft(), WSMsgType.TEXT)
                self.wake()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            self.state = State.CLOSED
        finally:
            self.writer = None
            self.wake()
