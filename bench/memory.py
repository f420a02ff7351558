"""``hub bench memory``: Redis bytes per feed entry, as the hub writes them.

Set-up: ``AUTHORS`` authors post ``PER_AUTHOR`` activities each through the API (batches
of 100); one follower follows them all and has read both feeds before (so the caches
exist and fan-out fills them). Verbs repeat across authors, so the follower's
``timeline_aggregated`` holds ``PER_AUTHOR`` groups (verb and day) of ``AUTHORS``
activities by ``AUTHORS`` actors each.

Measured with ``MEMORY USAGE`` over every key that belongs to each feed (all keys that
start with the feed's hash tag, ``Keys.feed_tag``; the marks included): bytes per entry of
the flat ``timeline`` and bytes per group of the aggregated one. Ceiling: a plain sorted
set of the same ids written with one ZADD in the same Redis (what the feed's order set
costs with no hub around it), so the figure shows what the hub adds. Target (issue 21): at
most 40 bytes per entry of a 1,000-entry flat feed.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.common import Environment, environment, info, signed_headers
from hub.config import Settings
from hub.domain.tokens import issue_token
from hub.storage import redis as redis_storage
from hub.storage.redis import Keys

AUTHORS = 4
PER_AUTHOR = 250
TARGET = 40.0


@dataclass
class MemoryResult:
    entries: int
    flat_bytes: int
    groups: int
    agg_bytes: int
    plain_bytes: int
    encoding: str
    listpack_entries: str

    def report(self) -> str:
        per_entry = self.flat_bytes / self.entries
        return "\n".join([
            f"memory: one follower of {AUTHORS} authors x {PER_AUTHOR} activities; "
            f"zset-max-listpack-entries {self.listpack_entries}",
            f"flat timeline, {self.entries} entries: {self.flat_bytes:,} bytes, {per_entry:.1f} B per entry "
            f"(order set encoded as {self.encoding})",
            f"ceiling (a plain sorted set of the same ids): {self.plain_bytes / self.entries:.1f} B per entry",
            f"aggregated timeline, {self.groups} groups of {AUTHORS}: {self.agg_bytes:,} bytes, "
            f"{self.agg_bytes / max(1, self.groups):.0f} B per group, "
            f"{self.agg_bytes / max(1, self.groups * AUTHORS):.0f} B per activity",
            f"target: at most {TARGET:.0f} B per flat entry: {'met' if per_entry <= TARGET else 'NOT met'}",
        ])


async def _post_all(env: Environment, authors: list[str]) -> list[str]:
    ids: list[str] = []
    async with aiohttp.ClientSession(env.url) as http:
        for a, author in enumerate(authors):
            for start in range(0, PER_AUTHOR, 100):
                batch = [{"actor": author, "verb": f"v{i}", "object": f"post:{a}:{i}", "foreign_id": f"m:{a}:{i}"}
                         for i in range(start, min(PER_AUTHOR, start + 100))]
                body = json.dumps({"activities": batch}).encode()
                async with http.post(f"/v1/apps/{env.app.id}/activities", data=body,
                                     headers=signed_headers(env.app, body)) as resp:
                    text = await resp.text()
                    if resp.status != 202:
                        raise RuntimeError(f"POST activities: {resp.status} {text}")
                    ids += [x["id"] for x in json.loads(text)["activities"]]
    return ids


async def _read(env: Environment, user: str, group: str) -> dict[str, Any]:
    token = issue_token(env.app.id, env.app.key, user, 600, now=int(time.time()))
    async with aiohttp.ClientSession(env.url) as http, http.get(
            f"/v1/feeds/{group}/{user}?limit=1",
            headers={"Authorization": f"Bearer {token}"}) as resp:
        body: dict[str, Any] = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"GET {group}: {resp.status} {body}")
        return body


async def _feed_bytes(r: Any, k: Keys, feed: str) -> int:
    keys = [key async for key in r.scan_iter(match=k.feed_tag(feed).replace("{", "\\{").replace("}", "\\}") + "*",
                                            count=1000)]
    total = 0
    for key in keys:
        total += int(await r.memory_usage(key, samples=0) or 0)
    return total


async def run_memory(settings: Settings, *, quick: bool = False) -> MemoryResult:
    from workers.context import close_hub, open_hub

    follower, authors = "reader", [f"author-{a}" for a in range(AUTHORS)]
    async with environment(settings) as env:
        s = env.settings
        hub = await open_hub(s)
        try:
            from hub.storage.follows import Follow

            for au in authors:
                await hub.follows.add(env.app.id, Follow(follower, au, None, 0))
        finally:
            await close_hub(hub)
        for group in ("timeline", "timeline_aggregated"):
            await _read(env, follower, group)  # builds the (empty) caches, as an active user has
        info(f"posting {AUTHORS * PER_AUTHOR} activities")
        ids = await _post_all(env, authors)
        deadline = time.monotonic() + 120
        k = Keys(s.redis.key_prefix, env.app.id)
        r = redis_storage.connect(s.redis)
        try:
            while True:  # fan-out done when both feeds hold everything
                flat = await r.zcard(k.feed(f"timeline:{follower}")) - 1
                members = await r.zcard(k.agg_members(f"timeline_aggregated:{follower}"))
                if flat >= len(ids) and members >= len(ids):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fan-out incomplete after 120 s: {flat} flat, {members} aggregated")
                await asyncio.sleep(0.2)
            for group in ("timeline", "timeline_aggregated"):
                await _read(env, follower, group)  # as read: marks loaded, first page kept
            scratch = f"{k.base}:bench-plain"
            await r.zadd(scratch, dict.fromkeys(ids, 0))
            plain = int(await r.memory_usage(scratch, samples=0) or 0)
            await r.delete(scratch)
            return MemoryResult(
                entries=len(ids),
                flat_bytes=await _feed_bytes(r, k, f"timeline:{follower}"),
                groups=await r.zcard(k.agg(f"timeline_aggregated:{follower}")) - 1,  # minus the sentinel
                agg_bytes=await _feed_bytes(r, k, f"timeline_aggregated:{follower}"),
                plain_bytes=plain,
                encoding=str(await r.object("encoding", k.feed(f"timeline:{follower}"))),
                listpack_entries=str((await r.config_get("zset-max-listpack-entries")).get(
                    "zset-max-listpack-entries", "?")),
            )
        finally:
            await r.aclose()
