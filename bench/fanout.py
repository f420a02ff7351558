"""``hub bench fanout``: one author, many followers, activities posted through the API.

Set-up (not measured): follows written through ``FollowStore.add``, every follower's
``timeline`` and ``timeline_aggregated`` caches built empty (as an active user's are) and
the followers marked active. Measured: from the first 202 until every follower's feeds,
read back from Redis, hold every activity. The Python-to-Redis pipelined ZADD ceiling is
measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.ceilings import redis_zadd_ceiling
from bench.common import Environment, Progress, environment, gather_limited, info, signed_headers
from bench.cpu import CpuMeter, format_cpu
from hub.config import Settings
from hub.storage.follows import Follow
from hub.storage.redis import Keys

GROUPS = ("timeline", "timeline_aggregated")


@dataclass
class FanoutResult:
    followers: int
    activities: int
    entries: int
    elapsed: float
    ceiling: float
    ceilings: list[float]
    workers: int
    chunk_size: int
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.entries / self.elapsed

    def report(self) -> str:
        return "\n".join([
            f"fanout: {self.followers} followers x {self.activities} activities x {len(GROUPS)} groups, "
            f"{self.workers} worker process(es), chunk_size {self.chunk_size}",
            f"entries written: {self.entries}",
            f"elapsed: {self.elapsed:.2f} s (first 202 to every feed complete)",
            f"fan-out: {self.rate:,.0f} entries/s",
            f"ceiling (Python-to-Redis pipelined ZADD, 1,000 keys per pipeline): {self.ceiling:,.0f} entries/s "
            f"(mean of {' and '.join(f'{c:,.0f}' for c in self.ceilings)}, measured before and after)",
            f"ratio: {self.rate / self.ceiling:.2f} of the ceiling",
            f"target: 20,000 entries/s: {'met' if self.rate >= 20_000 else 'NOT met'}",
            f"cpu during fan-out: {format_cpu(self.cpu, self.elapsed)}",
        ])


async def setup(env: Environment, author: str, followers: list[str]) -> None:
    from workers.context import close_hub, open_hub

    s = env.settings
    app = env.app.id
    hub = await open_hub(s)
    try:
        await gather_limited(
            64, (hub.follows.add(app, Follow(u, author, None, 0)) for u in followers), "follows", len(followers))

        async def build(u: str) -> None:
            for g in GROUPS:
                group, feed = s.feeds[g], f"{g}:{u}"
                await hub.feeds.start_build(app, group, feed)
                await hub.feeds.finish_build(app, feed)

        await gather_limited(100, (build(u) for u in followers), "feed caches", len(followers))
        now = time.time()
        pipe = hub.redis.pipeline(transaction=False)
        for u in followers:
            pipe.zadd(hub.follows.keys(app).active(), {u: now})  # = FollowStore.touch_active, batched
        await pipe.execute()
    finally:
        await close_hub(hub)


class Checker:
    """Polls followers' feeds in Redis until every one holds every posted activity."""

    def __init__(self, env: Environment, followers: list[str], expected: int) -> None:
        self.redis = None
        self.keys = Keys(env.settings.redis.key_prefix, env.app.id)
        self.expected = expected
        self.flat = set(followers)
        self.agg = set(followers)
        self.total = 2 * len(followers)

    @property
    def complete(self) -> int:
        return self.total - len(self.flat) - len(self.agg)

    async def poll(self, r: Any) -> None:
        k = self.keys
        users = list(self.flat)
        for i in range(0, len(users), 2000):
            part = users[i : i + 2000]
            pipe = r.pipeline(transaction=False)
            for u in part:
                pipe.zcard(k.feed(f"timeline:{u}"))
            for u, n in zip(part, await pipe.execute()):
                if n - 1 >= self.expected:  # minus the sentinel
                    self.flat.discard(u)
        users = list(self.agg)
        for i in range(0, len(users), 1000):
            part = users[i : i + 1000]
            pipe = r.pipeline(transaction=False)
            for u in part:
                pipe.zcard(k.agg_members(f"timeline_aggregated:{u}"))  # one member per activity held
            for u, held in zip(part, await pipe.execute()):
                if held >= self.expected:
                    self.agg.discard(u)

    async def verify(self, r: Any, followers: list[str], ids: set[str]) -> list[str]:
        """Exact check after the run: each feed holds exactly the posted ids (ZRANGE/HVALS)."""
        k = self.keys
        bad: list[str] = []
        for i in range(0, len(followers), 1000):
            part = followers[i : i + 1000]
            pipe = r.pipeline(transaction=False)
            for u in part:
                pipe.zrange(k.feed(f"timeline:{u}"), 0, -1)
                pipe.zrange(k.agg_members(f"timeline_aggregated:{u}"), 0, -1)
            res = await pipe.execute()
            for j, u in enumerate(part):
                flat = set(res[2 * j]) - {"!"}
                agg: set[str] = set()
                for m in res[2 * j + 1]:  # "<group id>|<activity id>|<actor>"
                    agg.add(m.split("|", 2)[1])
                if flat != ids or agg != ids:
                    bad.append(u)
        return bad


async def post_activities(env: Environment, author: str, n: int) -> tuple[float, list[str]]:
    """POST n activities one by one; returns the time of the first 202 and the ids."""
    ids: list[str] = []
    first = 0.0
    async with aiohttp.ClientSession(env.url) as http:
        for i in range(n):
            body = json.dumps({"actor": author, "verb": "post", "object": f"post:{i}",
                               "foreign_id": f"bench-post:{i}"}).encode()
            async with http.post(f"/v1/apps/{env.app.id}/activities", data=body,
                                 headers=signed_headers(env.app, body)) as resp:
                text = await resp.text()
                if resp.status != 202:
                    raise RuntimeError(f"POST activity: {resp.status} {text}")
                if not first:
                    first = time.perf_counter()
                ids += [a["id"] for a in json.loads(text)["activities"]]
    return first, ids


async def run_fanout(settings: Settings, *, quick: bool) -> FanoutResult:
    from hub import services
    from hub.storage import redis as redis_storage

    n_followers, n_activities = (500, 5) if quick else (10_000, 20)
    author = "author"
    followers = [f"follower-{i:05d}" for i in range(n_followers)]
    async with environment(settings) as env:
        s = env.settings
        info(f"setting up {n_followers} followers (not measured)")
        await setup(env, author, followers)

        info("measuring the Redis ceiling (before)")
        ceilings = [await redis_zadd_ceiling(s)]

        pids: dict[str, list[int]] = {"workers": env.worker_pids(), "server": [p.pid for n, p in env.procs if n == "server"]}
        for st in services.status(s):
            if st.pid:
                pids[st.name] = [st.pid]
        r = redis_storage.connect(s.redis)
        try:
            if "redis" not in pids:
                pids["redis"] = [int((await r.info("server"))["process_id"])]
            meter = CpuMeter(pids)
            meter.start()
            checker = Checker(env, followers, n_activities)
            post = asyncio.create_task(post_activities(env, author, n_activities))
            bar = Progress("feeds complete", checker.total)
            deadline = time.monotonic() + 600
            t_done = 0.0
            while True:
                await asyncio.sleep(0.1)
                if post.done():
                    post.result()  # raises if posting failed
                    await checker.poll(r)
                    bar.update(checker.complete)
                    if checker.complete == checker.total:
                        t_done = time.perf_counter()
                        break
                env.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fan-out incomplete after 600 s: {checker.complete}/{checker.total} feeds")
            bar.close()
            cpu = meter.stop()
            t_first, ids = post.result()
            elapsed = t_done - t_first
            bad = await checker.verify(r, followers, set(ids))
            if bad:
                raise RuntimeError(f"{len(bad)} followers' feeds do not hold exactly the posted activities, e.g. {bad[:3]}")
            info(f"verified: all {n_followers} followers' timelines hold exactly the {n_activities} activities")
            info("measuring the Redis ceiling (after)")
            ceilings.append(await redis_zadd_ceiling(s))
        finally:
            await r.aclose()
        return FanoutResult(
            followers=n_followers, activities=n_activities, entries=n_followers * n_activities * len(GROUPS),
            elapsed=elapsed, ceiling=sum(ceilings) / len(ceilings), ceilings=ceilings, workers=env.worker_processes, chunk_size=s.fanout.chunk_size, cpu=cpu,
        )
