"""Sampled activities of ``hub bench soak``: fan-out lag and push lag, measured.

Fan-out lag: from a sample's 202 to the moment the last of its followers' feeds (timeline
and timeline_aggregated of every follower) holds it. A feed is known to hold it at the
earliest of two observations, each made after the write: a socket frame naming it on that
feed (a frame is built from the feed after the write), and a poll of the feed's Redis keys
that finds it (an upper bound by the time between polls: POLL seconds, longer under a
backlog, as the polls are kept under ZSCORES_PER_S). Flat feeds are polled
with ZSCORE of the feed's sorted set; aggregated ones with ZSCORE of
``<group id>|<activity id>|<actor>`` in the feed's member set (hub.storage.feedcache).

Push lag: from the 202 to the last frame naming it on a follower's socket (the sockets
watch timeline_aggregated), so the gateway's own delay is seen apart from fan-out's.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench.soak_parts import GROUPS, WATCHED, Layout
from hub.domain.aggregation import group_id, group_key
from hub.domain.models import Activity
from hub.storage.redis import Keys

POLL = 0.05  # seconds between polls of the feeds of samples not yet everywhere
POLL_CAP = 2000  # ZSCOREs per poll at most, in turns (a sample never found must not starve the others)
ZSCORES_PER_S = 10_000  # so that polling a backlog does not load Redis much


@dataclass
class Sample:
    t202: float
    author: str
    member: str  # "<group id>|<activity id>|<actor>", its entry in an aggregated feed's member set


class Samples:
    def __init__(self, layout: Layout, keys: Keys, template: str) -> None:
        self.layout, self.keys, self.template = layout, keys, template
        self.sent: dict[str, Sample] = {}
        self.held: dict[str, dict[str, float]] = {}  # id -> {feed: first seen holding it}
        self.frames: dict[str, dict[str, float]] = {}  # id -> {feed: first frame naming it}
        self.lags: dict[str, float] = {}  # id -> fan-out lag in ms, once every feed holds it
        self.push: dict[str, float] = {}  # id -> push lag in ms, once every socket had its frame
        self._turn = 0

    def add(self, aid: str, t202: float, author: str, verb: str, when: datetime) -> None:
        a = Activity(id=aid, actor=author, verb=verb, object="", time=when)
        self.sent[aid] = Sample(t202, author, f"{group_id(group_key(self.template, a))}|{aid}|{author}")
        self._resolve(aid)

    def feeds(self, aid: str) -> list[str]:
        return [f"{g}:{u}" for u in self.layout.followers[self.sent[aid].author] for g in GROUPS]

    def absorb(self, records: list[tuple[str, str, float]]) -> None:
        """Frames from the socket processes: (feed, activity id, arrival)."""
        for feed, aid, t in records:
            self.frames.setdefault(aid, {}).setdefault(feed, t)
            held = self.held.setdefault(aid, {})
            held[feed] = min(t, held.get(feed, t))
            if aid in self.sent:
                self._resolve(aid)

    def _resolve(self, aid: str) -> None:
        s = self.sent[aid]
        feeds = self.feeds(aid)
        held, frames = self.held.get(aid, {}), self.frames.get(aid, {})
        if aid not in self.lags and all(f in held for f in feeds):
            self.lags[aid] = max(0.0, max(held[f] for f in feeds) - s.t202) * 1000
        watched = [f for f in feeds if f.startswith(WATCHED + ":")]
        if aid not in self.push and all(f in frames for f in watched):
            self.push[aid] = max(0.0, max(frames[f] for f in watched) - s.t202) * 1000

    async def poll(self, redis: Any) -> int:
        """One poll of the feeds not yet seen holding their sample; how many were polled."""
        todo: list[tuple[str, str]] = []
        waiting = [a for a in self.sent if a not in self.lags]
        self._turn += 1
        for i in range(len(waiting)):
            aid = waiting[(self._turn * 7 + i) % len(waiting)]  # each poll starts elsewhere
            held = self.held.get(aid, {})
            todo += [(aid, f) for f in self.feeds(aid) if f not in held]
            if len(todo) >= POLL_CAP:
                break
        if not todo:
            return 0
        pipe = redis.pipeline(transaction=False)
        for aid, feed in todo:
            if feed.startswith("timeline_aggregated:"):
                pipe.zscore(self.keys.agg_members(feed), self.sent[aid].member)
            else:
                pipe.zscore(self.keys.feed(feed), aid)
        found = await pipe.execute()
        now = time.monotonic()
        for (aid, feed), score in zip(todo, found):
            if score is not None:
                self.held.setdefault(aid, {}).setdefault(feed, now)
        for aid in {a for a, _ in todo}:
            self._resolve(aid)
        return len(todo)

    async def run(self, redis: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            n = await self.poll(redis)
            await asyncio.sleep(max(POLL, n / ZSCORES_PER_S))

    def missing(self) -> dict[str, int]:
        """Feeds never seen holding their sample, by group: {group: feeds}."""
        out = dict.fromkeys(GROUPS, 0)
        for aid in self.sent:
            if aid not in self.lags:
                for f in self.feeds(aid):
                    if f not in self.held.get(aid, {}):
                        out[f.partition(":")[0]] += 1
        return out

    def window(self, lo: float, hi: float, now: float, push: bool = False) -> tuple[list[float], int]:
        """Lags (ms) of the samples whose 202 came in [lo, hi), and how many of them are
        still unresolved (counted at their age so far: a lower bound)."""
        done = self.push if push else self.lags
        out, pending = [], 0
        for aid, s in self.sent.items():
            if lo <= s.t202 < hi:
                got = done.get(aid)
                pending += got is None
                out.append(got if got is not None else (now - s.t202) * 1000)
        return out, pending
