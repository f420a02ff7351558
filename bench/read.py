"""``hub bench read``: feed reads through the real server, load from wrk in its own process.

Set-up (not measured): ``USERS`` users each following ``FOLLOWS`` of ``AUTHORS`` authors
(written to Cassandra through ``FollowStore.add``), each author with ``PER_AUTHOR``
activities, so every timeline holds a few hundred entries. Every user's timeline is warmed
by one read through the API (a rebuild from Cassandra); every notification feed is filled
with the same ``NOTIFY`` activities (about 150 groups of a few activities).

Measured, against one ``hub serve`` process:

- the static-response ceiling: ``GET /healthz`` at the same concurrency;
- a hot flat timeline page of 25 (random user and token per request);
- a hot notification page of 25 groups with counts;
- cold timeline reads: the user's feed cache and marks dropped before each read (outside
  the timed part), from an aiohttp client in this (separate) process, one at a time.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.common import Environment, environment, gather_limited, info, percentile
from bench.wrk import DONE_LUA, ensure_wrk, run_wrk
from hub.config import Settings
from hub.domain.models import Activity
from hub.domain.tokens import issue_token
from hub.storage.follows import Follow

CONNECTIONS = 50
PAGE = 25
VERBS = ("like", "comment", "share")


@dataclass
class Load:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"{self.name:<34} {self.rate:>9,.0f} req/s   p50 {self.p50_ms:6.2f} ms   p99 {self.p99_ms:6.2f} ms"
                f"   errors {self.errors}")


@dataclass
class ReadResult:
    users: int
    follows: int
    entries: int
    duration: int
    loads: list[Load] = field(default_factory=list)
    cold: Load | None = None

    def get(self, name: str) -> Load:
        return next(x for x in self.loads if x.name == name)

    def report(self) -> str:
        hot, notif, static = self.get("timeline page of 25, hot"), self.get("notification page of 25, hot"), \
            self.get("static GET /healthz (ceiling)")
        lines = [
            f"read: {self.users} users x {self.follows} follows, {self.entries} entries per timeline, "
            f"one server process, wrk -t1 -c{CONNECTIONS} -d{self.duration}s",
            *(x.line() for x in self.loads),
        ]
        if self.cold:
            lines.append(self.cold.line())
        lines += [
            f"timeline / static ceiling: {hot.rate / static.rate:.2f}",
            f"target hot timeline p99 <= 25 ms and >= 3,000 req/s: "
            f"{'met' if hot.p99_ms <= 25 and hot.rate >= 3000 else 'NOT met'}",
            f"target notification p99 <= 40 ms: {'met' if notif.p99_ms <= 40 else 'NOT met'}",
        ]
        if self.cold:
            lines.append(f"target cold timeline p99 <= 60 ms: {'met' if self.cold.p99_ms <= 60 else 'NOT met'}")
        return "\n".join(lines)


_LUA = """
local paths = %(paths)s
local tokens = %(tokens)s
math.randomseed(os.time())
request = function()
  local i = math.random(#paths)
  local h = {}
  if tokens[i] ~= "" then h["Authorization"] = "Bearer " .. tokens[i] end
  return wrk.format("GET", paths[i], h)
end
%(done)s
"""


def _lua_list(items: list[str]) -> str:
    return "{" + ",".join(json.dumps(x) for x in items) + "}"


async def wrk(env: Environment, name: str, paths: list[str], tokens: list[str], seconds: int) -> Load:
    script = env.tmp / f"{name.split()[0]}-{len(paths)}.lua"
    script.write_text(_LUA % {"paths": _lua_list(paths), "tokens": _lua_list(tokens), "done": DONE_LUA})
    cmd = [ensure_wrk(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), env.url]
    info(f"{name}: {' '.join(cmd[1:])}")
    r = await run_wrk(env, cmd)
    return Load(name, r["requests"], r["duration_us"] / 1e6, r["p50"] / 1000, r["p99"] / 1000, r["errors"])


async def run_read(settings: Settings, *, quick: bool = False) -> ReadResult:
    from workers.context import close_hub, open_hub

    users_n, authors_n, follows_n, per_author = (100, 40, 20, 10) if quick else (1000, 200, 50, 6)
    notify_n = 100 if quick else 300
    seconds = int(os.environ.get("HUB_BENCH_READ_SECONDS") or (3 if quick else 10))
    ensure_wrk()
    async with environment(settings, workers=False) as env:
        app = env.app
        hub = await open_hub(env.settings)
        try:
            users = [f"reader-{i}" for i in range(users_n)]
            authors = [f"author-{i}" for i in range(authors_n)]
            rnd = random.Random(7)
            # Activities, oldest first, interleaved between authors as real posting would be.
            pool: list[Activity] = []

            async def store(i: int) -> None:
                a = Activity(id=hub.ids.new(), actor=authors[i % authors_n], verb=VERBS[i % 3],
                             object=f"photo:{i % 50}", target=None, time=_now(), foreign_id=None, to=(), extra={})
                pool.append((await hub.activities.store(app.id, a)).activity)

            await gather_limited(64, [store(i) for i in range(authors_n * per_author)], "activities")
            pool.sort(key=lambda a: a.id)
            follows = [(u, f) for u in users for f in rnd.sample(authors, follows_n)]
            await gather_limited(128, [hub.follows.add(app.id, Follow(u, f, None, 0)) for u, f in follows], "follows")
            notif = hub.settings.feeds["notification"]
            notify = pool[-notify_n:]

            async def fill_notification(u: str) -> None:
                feed = f"notification:{u}"
                await hub.feeds.start_build(app.id, notif, feed)
                await hub.feeds.fill(app.id, notif, feed, notify)
                await hub.feeds.finish_build(app.id, feed)

            await gather_limited(32, [fill_notification(u) for u in users], "notification feeds")
            tokens = [issue_token(app.id, app.key, u, 86400, now=int(time.time())) for u in users]
            tl_paths = [f"/v1/feeds/timeline/{u}?limit={PAGE}" for u in users]
            nf_paths = [f"/v1/feeds/notification/{u}?limit={PAGE}" for u in users]
            entries = 0
            async with aiohttp.ClientSession(env.url) as s:
                async def warm(path: str, tok: str) -> None:
                    nonlocal entries
                    async with s.get(path, headers={"Authorization": f"Bearer {tok}"}) as r:
                        body = await r.json()
                        if r.status != 200:
                            raise RuntimeError(f"warm-up read {path}: {r.status} {body}")
                        entries = max(entries, len(body["results"]))

                await gather_limited(16, [warm(p, t) for p, t in zip(tl_paths + nf_paths, tokens + tokens)], "warm caches")
            entries = await hub.feeds.count(app.id, hub.settings.feeds["timeline"], f"timeline:{users[0]}")
            result = ReadResult(users_n, follows_n, entries, seconds)
            result.loads.append(await wrk(env, "static GET /healthz (ceiling)", ["/healthz"], [""], seconds))
            result.loads.append(await wrk(env, "timeline page of 25, hot", tl_paths, tokens, seconds))
            result.loads.append(await wrk(env, "notification page of 25, hot", nf_paths, tokens, seconds))
            result.cold = await cold_reads(env, hub, users, tokens, 50 if quick else 300)
        finally:
            await close_hub(hub)
    return result


def _now() -> Any:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


async def cold_reads(env: Environment, hub: Any, users: list[str], tokens: list[str], n: int) -> Load:
    """Drop a user's timeline cache and marks, then time one read through the API; repeat."""
    app = env.app.id
    k = hub.feeds.keys(app)
    lat: list[float] = []
    errors = 0
    picks = random.Random(11).sample(range(len(users)), min(n, len(users)))
    start_all = time.perf_counter()
    async with aiohttp.ClientSession(env.url) as s:
        for i in picks:
            feed = f"timeline:{users[i]}"
            await hub.feeds.drop(app, feed)
            await hub.redis.delete(k.marks(feed))
            t0 = time.perf_counter()
            async with s.get(f"/v1/feeds/timeline/{users[i]}?limit={PAGE}",
                             headers={"Authorization": f"Bearer {tokens[i]}"}) as r:
                await r.read()
                errors += r.status != 200
            lat.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - start_all
    return Load("timeline page of 25, cold (1 at a time)", len(lat), elapsed, percentile(lat, 50),
                percentile(lat, 99), errors)



