"""Sharded pub/sub (``SSUBSCRIBE``) for the gateway, over plain redis-py connections.

redis-py's asyncio PubSub (pinned below 6 by arq) has no SSUBSCRIBE, so this module
speaks it itself: one connection per Redis node that owns the slot of a channel this
process follows (on a Redis Cluster: slot -> node from ``CLUSTER SLOTS``), or the one
connection of a single Redis, kept open even without channels (its loss is an outage).

Guarantees:
- Delivery: a message published on a subscribed channel reaches ``on_messages`` at most
  once, in the order its node published it (per channel: the publish order).
- Loss: a subscription can end without being asked to (the connection drops, its node
  fails over, a slot moves and the node sends ``sunsubscribe``, a node answers MOVED).
  Then the subscriber reconnects (the slot map read again on a cluster), subscribes the
  channels again, and calls ``on_resumed`` with them once confirmed: messages published
  in between were not delivered, and the caller covers that gap from the per-feed change
  stream (realtime/dispatch.py).
- :meth:`subscribe` returns once the node confirmed the subscription: a message
  published after that is delivered.

Batching: subscribes and unsubscribes asked for within ``COALESCE`` seconds leave in one
write per node, as one command per slot (a cluster refuses channels of several slots in
one command; a single Redis takes them all in one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

from redis.asyncio.connection import Connection, SSLConnection
from redis.crc import key_slot
from redis.exceptions import ResponseError

from hub.storage.outage import DEPENDENCY_DOWN, OutageLog

log = logging.getLogger(__name__)

COALESCE = 0.005  # seconds: subscribes asked for meanwhile share a write
MAX_BATCH = 1000  # messages handed over at once
RETRY = 1.0  # seconds between attempts while a node or the cluster is unreachable
# A node gone, or one that no longer serves a slot (MOVED, CLUSTERDOWN): start over.
LOST: tuple[type[BaseException], ...] = (*DEPENDENCY_DOWN, ResponseError)

Node = tuple[str, int]


class Link:
    """One connection to one node and the channels confirmed on it."""

    def __init__(self, node: Node, conn: Connection) -> None:
        self.node = node
        self.conn = conn
        self.channels: set[str] = set()  # confirmed
        self.asked: set[str] = set()  # sent, not confirmed yet
        self.reader: asyncio.Task[None] | None = None


class ShardedSubscriber:
    def __init__(self, url: str, outage: OutageLog, on_messages: Callable[[list[bytes]], Awaitable[None]],
                 on_resumed: Callable[[list[str]], None], *, nodes: tuple[str, ...] = ()) -> None:
        u = urlparse(url)
        self.seed: Node = (u.hostname or "127.0.0.1", u.port or 6379)
        # More start-up nodes of a cluster ("host:port", [redis] nodes): asked for the slot
        # map when the url's node is down.
        self.seeds = [self.seed, *((h, int(p)) for h, _, p in (n.rpartition(":") for n in nodes))]
        self._auth: dict[str, Any] = {"username": u.username, "password": u.password}
        self._tls = u.scheme == "rediss"
        self.outage = outage
        self.on_messages = on_messages
        self.on_resumed = on_resumed
        self.cluster = False
        self.slots: list[tuple[int, int, Node]] = []  # (first, last, primary), on a cluster
        self.links: dict[Node, Link] = {}
        self.wanted: set[str] = set()
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._to_sub: set[str] = set()
        self._to_unsub: set[str] = set()
        self._lost: set[str] = set()  # to report to on_resumed once confirmed again
        self._kick = asyncio.Event()
        self._refresh = True  # read the slot map (and connect the home link) before the next write
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        self._kick.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for link in list(self.links.values()):
            await self._close(link)

    # -- what the caller wants -----------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Until ``channel`` is subscribed (confirmed by its node)."""
        self.wanted.add(channel)
        self._to_unsub.discard(channel)
        if any(channel in link.channels for link in self.links.values()):
            return
        fut = self._waiters.get(channel)
        if fut is None:
            fut = self._waiters[channel] = asyncio.get_running_loop().create_future()
            self._to_sub.add(channel)
            self._kick.set()
        await asyncio.shield(fut)

    def unsubscribe(self, channel: str) -> None:
        self.wanted.discard(channel)
        self._to_sub.discard(channel)
        self._lost.discard(channel)
        self._resolve(channel)
        self._to_unsub.add(channel)
        self._kick.set()

    def _resolve(self, channel: str) -> None:
        fut = self._waiters.pop(channel, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    # -- writing ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._kick.wait()
            await asyncio.sleep(COALESCE)
            self._kick.clear()
            try:
                await self._write()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # an outage (or a bug: loud), never the end of this task
                if isinstance(e, LOST):
                    self.outage.failed(e)
                else:
                    log.exception("realtime: sharded subscribe failed")
                self._refresh = True
                await asyncio.sleep(RETRY)
                self._kick.set()

    async def _write(self) -> None:
        if self._refresh:
            await self._read_topology()
            self._refresh = False
        subs, self._to_sub = [c for c in self._to_sub if c in self.wanted], set()
        unsubs, self._to_unsub = self._to_unsub, set()
        per_node: dict[Node, list[list[Any]]] = {}
        try:
            for ch in unsubs:
                for link in self.links.values():
                    if ch in link.channels or ch in link.asked:
                        link.channels.discard(ch)
                        link.asked.discard(ch)
                        per_node.setdefault(link.node, []).append(["SUNSUBSCRIBE", ch])
            for node, group in self._by_slot(subs).items():
                link = await self._link(node)
                link.asked.update(c for g in group for c in g)
                per_node.setdefault(node, []).extend(["SSUBSCRIBE", *g] for g in group)
            for node, commands in per_node.items():
                link = self.links[node]
                await link.conn.send_packed_command(link.conn.pack_commands(commands), check_health=False)
        except BaseException:
            self._to_sub.update(subs)  # tried again after the pause
            self._to_unsub.update(c for c in unsubs if c not in self.wanted)
            raise

    def _by_slot(self, channels: list[str]) -> dict[Node, list[list[str]]]:
        """Channels grouped per node, then per slot (all in one group on a single Redis)."""
        if not self.cluster:
            return {self.seed: [channels]} if channels else {}
        by_slot: dict[int, list[str]] = {}
        for ch in channels:
            by_slot.setdefault(key_slot(ch.encode()), []).append(ch)
        out: dict[Node, list[list[str]]] = {}
        for slot, group in by_slot.items():
            out.setdefault(self._node_of(slot), []).append(group)
        return out

    def _node_of(self, slot: int) -> Node:
        for first, last, node in self.slots:
            if first <= slot <= last:
                return node
        raise ResponseError(f"CLUSTERDOWN slot {slot} is not served")  # retried after a new map

    async def _read_topology(self) -> None:
        """Single Redis or cluster, and on a cluster the slot map, from any known node."""
        candidates = [*self.seeds, *{n for _, _, n in self.slots}]
        err: BaseException | None = None
        for node in dict.fromkeys(candidates):
            conn = self._connection(node, socket_timeout=2)
            try:
                await conn.send_command("INFO", "cluster")
                info = await conn.read_response()
                self.cluster = b"cluster_enabled:1" in info if isinstance(info, bytes) else "cluster_enabled:1" in info
                if self.cluster:
                    await conn.send_command("CLUSTER", "SLOTS")
                    rows = await conn.read_response()
                    self.slots = [(int(r[0]), int(r[1]), (_text(r[2][0]) or node[0], int(r[2][1]))) for r in rows]
                    break
                await self._link(self.seed)  # a single Redis: the home link, kept open
                break
            except LOST as e:
                err = e
            finally:
                await conn.disconnect()
        else:
            assert err is not None
            raise err
        self.outage.recovered()
        self.ready.set()

    def _connection(self, node: Node, socket_timeout: float | None) -> Connection:
        """A plain connection to ``node`` (TLS and credentials as in the url); reads without
        a timeout when ``socket_timeout`` is None (a subscriber waits for messages)."""
        kind = SSLConnection if self._tls else Connection
        return kind(host=node[0], port=node[1], socket_connect_timeout=2, socket_timeout=socket_timeout,
                    health_check_interval=0, **self._auth)

    async def _link(self, node: Node) -> Link:
        link = self.links.get(node)
        if link is None:
            link = Link(node, self._connection(node, socket_timeout=None))
            await link.conn.connect()  # type: ignore[no-untyped-call]  # unannotated in redis-py
            self.links[node] = link
            link.reader = asyncio.create_task(self._read(link))
        return link

    # -- reading ----------------------------------------------------------------------

    async def _read(self, link: Link) -> None:
        conn = link.conn
        try:
            while True:
                batch: list[bytes] = []
                msg = await conn.read_response(disable_decoding=True, timeout=None)
                while msg is not None:
                    self._handle(link, msg, batch)
                    if len(batch) >= MAX_BATCH:
                        break
                    # What is already buffered, without waiting (None: nothing). Not
                    # can_read_destructive: with hiredis it consumes the reply it finds.
                    msg = await conn.read_response(disable_decoding=True, timeout=0)
                if batch:
                    await self.on_messages(batch)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the connection or its node went away, or a MOVED: start over
            if not isinstance(e, LOST):
                log.exception("realtime: sharded subscription failed")
            self.outage.failed(e)
            self._lose(link)

    def _handle(self, link: Link, msg: Any, batch: list[bytes]) -> None:
        kind = _text(msg[0]) if isinstance(msg, list) and msg else ""
        if kind == "smessage":
            batch.append(msg[2])
            return
        ch = _text(msg[1]) if len(msg) > 1 else ""
        if kind == "ssubscribe" and ch in link.asked:
            link.asked.discard(ch)
            link.channels.add(ch)
            self._resolve(ch)
            if ch in self._lost:
                self._lost.discard(ch)
                self.on_resumed([ch])
        elif kind == "sunsubscribe" and ch in link.channels:  # not asked for: the slot moved
            link.channels.discard(ch)
            self._lost.add(ch)
            self._to_sub.add(ch)
            self._refresh = True
            self._kick.set()

    def _lose(self, link: Link) -> None:
        """Everything ``link`` held is subscribed again, from a fresh slot map."""
        if self.links.get(link.node) is link:
            del self.links[link.node]
        self._lost |= link.channels & self.wanted  # confirmed before: the caller resumes them
        self._to_sub |= (link.channels | link.asked) & self.wanted
        self._refresh = True
        self._kick.set()
        asyncio.get_running_loop().create_task(link.conn.disconnect(nowait=True))

    async def _close(self, link: Link) -> None:
        if link.reader is not None:
            link.reader.cancel()
            with contextlib.suppress(BaseException):
                await link.reader
        with contextlib.suppress(Exception):
            await link.conn.disconnect(nowait=True)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
