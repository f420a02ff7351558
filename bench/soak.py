"""``hub bench soak [--minutes 10]``: steady load for minutes, to see whether the hub holds.

One ``hub serve`` and the workers as subprocesses; 500 users each following 5 of 50
authors (bench/soak_parts.py), every user's timeline caches built and the user active.
From this process, open loop (sent on schedule, whatever the answers): ``--posts`` signed
single-activity POSTs a second (three verbs, so each follower's ``{verb}:{day}`` groups of
``timeline_aggregated`` grow to thousands of activities in 10 minutes) and ``--reads``
timeline and timeline_aggregated pages a second; ``--sockets`` websockets in two client
processes, each subscribed to its user's timeline_aggregated.

Lags: five posts a second are *samples*, by an author all of whose followers have a
socket. Fan-out lag runs from a sample's 202 to the moment the last of its followers' feeds
holds it; push lag to the last of its followers' sockets' frames (bench/soak_samples.py).
A line covers the samples posted ``GRACE`` seconds before its window, so each has had that
long; one still missing then counts at its age (a lower bound, shown as ``>``). Printed
every ``--interval`` seconds: post, read and lag p50/p99, the arq queues' depth, CPU and
RSS of each process, and ``GET /healthz`` latency probed beside the load (the machine's
own floor at that moment). The ceilings (healthz at the post
rate, Redis pub/sub, pipelined ZADD) are measured before and after the load.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import time
from datetime import datetime, timezone
from typing import Any

import aiohttp

from bench.ceilings import pubsub_ceiling, redis_zadd_ceiling
from bench.common import Environment, Progress, environment, info, signed_headers
from bench.soak_parts import GROUPS, MARKER, Layout, ProcessMeter, Sockets, log_counts, process_pids, set_up
from bench.soak_report import AUTHORS, FOLLOWS, USERS, VERBS, Ceiling, Interval, SoakOptions, SoakResult
from bench.soak_samples import Samples
from hub.config import Settings
from hub.domain.tokens import issue_token
from hub.queue import PRIORITIES, queue_name
from hub.storage.redis import Keys, connect

SAMPLES_PER_S = 5.0
HEALTH_PER_S = 5.0
GRACE = 5.0  # seconds a sample has before its line is printed; also the lag target
# Requests in flight per kind at most: 5 s of them. Beyond, a due request is skipped and
# counted, so that an overloaded server is not also buried under this process's backlog
# (and this process's loop, which times the lags, stays responsive).
CAP_SECONDS = 5.0
FINAL_WAIT = 60.0


async def paced(rate: float, end: float, fire: Any, skipped: list[int]) -> None:
    """Call ``fire(n)`` ``rate`` times a second until ``end``, open loop; at most CAP_SECONDS
    of calls in flight."""
    inflight: set[asyncio.Task[None]] = set()
    t0, n = time.monotonic(), 0
    while (now := time.monotonic()) < end:
        while n < int((now - t0) * rate):
            n += 1
            if len(inflight) >= max(10, rate * CAP_SECONDS):
                skipped[0] += 1
                continue
            task = asyncio.create_task(fire(n))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        await asyncio.sleep(max(0.001, t0 + (n + 1) / rate - time.monotonic()))
    await asyncio.gather(*inflight, return_exceptions=True)


class Flight:
    """Requests sent and not yet answered, so that a line counts them (at their age so far)."""

    def __init__(self) -> None:
        self.open: dict[int, float] = {}
        self._n = 0

    def begin(self) -> tuple[int, float]:
        self._n += 1
        t0 = self.open[self._n] = time.monotonic()
        return self._n, t0

    def ages(self, lo: float, hi: float, now: float) -> list[float]:
        return [(now - t0) * 1000 for t0 in self.open.values() if lo <= t0 < hi]


async def timed_get(http: aiohttp.ClientSession, path: str, headers: dict[str, str], out: list[Any],
                    start: float, flight: Flight) -> int:
    key, t0 = flight.begin()
    try:
        async with http.get(path, headers=headers) as r:
            await r.read()
            status = r.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        status = 0
    finally:
        flight.open.pop(key)
    if status == 200:
        out.append((t0 - start, (time.monotonic() - t0) * 1000))
    return status


async def ceiling(env: Environment, http: aiohttp.ClientSession, rate: float) -> Ceiling:
    info("measuring the ceilings")
    health: list[Any] = []
    await paced(rate, time.monotonic() + 5, lambda n: timed_get(http, "/healthz", {}, health, 0.0, Flight()), [0])
    return Ceiling([ms for _, ms in health], await pubsub_ceiling(env.settings, quick=True),
                   await redis_zadd_ceiling(env.settings))


async def run_soak(settings: Settings, opts: SoakOptions) -> SoakResult:
    if min(opts.minutes, opts.interval, opts.posts, opts.reads) <= 0 or opts.sockets < 1:
        raise RuntimeError(f"soak options must be positive (at least one socket): {opts}")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n_lines = max(1, round(opts.minutes * 60 / opts.interval))
    seconds = n_lines * opts.interval
    layout = Layout.make(USERS, AUTHORS, opts.sockets, FOLLOWS)
    async with environment(settings) as env:
        app = env.app
        info(f"setting up {USERS} users, {AUTHORS} authors (not measured)")
        await set_up(env, layout)
        ttl = int(seconds) + 3600
        now = int(time.time())
        tokens = {u: issue_token(app.id, app.key, u, ttl, now=now) for u in layout.users}
        sockets = Sockets(env, layout.socket_users, ttl)
        info(f"connecting {len(layout.socket_users)} sockets")
        try:
            n_sockets = await sockets.start()
            return await _soak(env, opts, layout, sockets, n_sockets, tokens, seconds, n_lines)
        finally:
            await sockets.finish()


async def _soak(env: Environment, opts: SoakOptions, layout: Layout, sockets: Sockets, n_sockets: int,
                tokens: dict[str, str], seconds: float, n_lines: int) -> SoakResult:
    app, rnd = env.app, random.Random(1)
    redis = connect(env.settings.redis, max_connections=4)
    queues = [queue_name(env.settings.redis, p) for p in PRIORITIES]
    redis_pid = int((await redis.info("server"))["process_id"])
    meter = ProcessMeter(process_pids(env, redis_pid, sockets.pids()))
    raw: dict[str, list[tuple[float, float]]] = {"post": [], "read": [], "health": []}
    counts: dict[str, Any] = {"posted": 0, "read": 0}
    errors: dict[str, dict[int, int]] = {"post": {}, "read": {}}  # kind -> {status (0: no answer): n}
    flights = {k: Flight() for k in raw}
    samples = Samples(layout, Keys(env.settings.redis.key_prefix, app.id),
                      env.settings.feeds["timeline_aggregated"].aggregate or "{verb}")
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(env.url, connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as http:
        ceilings = [await ceiling(env, http, opts.posts)]
        start = time.monotonic()
        end = start + seconds

        async def post(n: int) -> None:
            sample = int(n * SAMPLES_PER_S / opts.posts) > int((n - 1) * SAMPLES_PER_S / opts.posts)
            author = rnd.choice(layout.probes if sample else layout.authors)
            verb, when = VERBS[rnd.randrange(len(VERBS))], datetime.now(timezone.utc)
            # The time is sent so that the sample's group ({verb}:{day}) is known here.
            body = json.dumps({"actor": author, "verb": verb, "object": f"{MARKER}{n}" if sample else f"post:{n}",
                               "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}).encode()
            key, t0 = flights["post"].begin()
            try:
                async with http.post(f"/v1/apps/{app.id}/activities", data=body,
                                     headers=signed_headers(app, body)) as r:
                    text, status = await r.text(), r.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                text, status = "", 0
            finally:
                flights["post"].open.pop(key)
            t1 = time.monotonic()
            if status != 202:
                errors["post"][status] = errors["post"].get(status, 0) + 1
                return
            counts["posted"] += 1
            raw["post"].append((t0 - start, (t1 - t0) * 1000))
            if sample:
                samples.add(json.loads(text)["activities"][0]["id"], t1, author, verb, when)

        async def read(n: int) -> None:
            u = rnd.choice(layout.users)
            status = await timed_get(http, f"/v1/feeds/{GROUPS[n % 2]}/{u}?limit=25",
                                     {"Authorization": f"Bearer {tokens[u]}"}, raw["read"], start, flights["read"])
            if status == 200:
                counts["read"] += 1
            else:
                errors["read"][status] = errors["read"].get(status, 0) + 1

        skipped = {"post": [0], "read": [0], "health": [0]}
        stop_polls = asyncio.Event()
        poller = asyncio.create_task(samples.run(redis, stop_polls))
        load = asyncio.gather(
            paced(opts.posts, end, post, skipped["post"]), paced(opts.reads, end, read, skipped["read"]),
            paced(HEALTH_PER_S, end, lambda n: timed_get(http, "/healthz", {}, raw["health"], start, flights["health"]),
                  skipped["health"]))

        intervals: list[Interval] = []
        bar = Progress("soak", int(seconds), "s")
        boundary, depth_max = start + opts.interval, 0
        print(f"soak: every {opts.interval:.0f} s (lag: samples posted {GRACE:.0f} s before the window; "
              "cpu% of one core / rss)", flush=True)
        while len(intervals) < n_lines:
            await asyncio.sleep(1.0)
            if load.done():
                load.result()  # raises what the load raised
            samples.absorb(sockets.drain())
            depth = [await redis.zcard(q) for q in queues]
            depth_max = max(depth_max, sum(depth))
            env.check_alive()
            bar.update(min(int(seconds), int(time.monotonic() - start)))
            if time.monotonic() >= boundary + 1.0:  # a second for the window's last answers
                lo, hi = boundary - start - opts.interval, boundary - start
                now = time.monotonic()
                lags = samples.window(start + lo - GRACE, start + hi - GRACE, now)
                push = samples.window(start + lo - GRACE, start + hi - GRACE, now, push=True)
                procs, machine = meter.sample()
                ages = {k: f.ages(lo + start, hi + start, now) for k, f in flights.items()}
                win = {k: [ms for t, ms in v if lo <= t < hi] + ages[k] for k, v in raw.items()}
                intervals.append(Interval(hi, win["post"], win["read"], win["health"], lags, push,
                                          (depth[0], depth[1]), depth_max, procs, machine, opts.interval,
                                          {k: len(a) for k, a in ages.items()}))
                print(intervals[-1].line(), flush=True)
                boundary, depth_max = boundary + opts.interval, 0
        bar.close()
        await load
        # Past the sweep (every 30 s, for markers 20 s old), so that "missing" means lost.
        info(f"load stopped: waiting up to {FINAL_WAIT:.0f} s for the samples to reach every feed and socket")
        for _ in range(int(FINAL_WAIT)):
            samples.absorb(sockets.drain())
            if len(samples.lags) == len(samples.push) == len(samples.sent):
                break
            await asyncio.sleep(1.0)
        stop_polls.set()
        await poller
        ceilings.append(await ceiling(env, http, opts.posts))
        biggest = 0
        for u in (layout.socket_users[0], layout.users[-1]):  # one follower of probe authors, one of the rest
            async with http.get(f"/v1/feeds/timeline_aggregated/{u}?limit=25",
                                headers={"Authorization": f"Bearer {tokens[u]}"}) as r:
                page = await r.json()
            biggest = max([biggest, *(e.get("activity_count", 0) for e in page.get("results", []))])
    await redis.aclose()
    counts |= {"post_skipped": skipped["post"][0], "read_skipped": skipped["read"][0], "sockets": n_sockets,
               "frames": sockets.total("frames"), "closed": sockets.total("closed"), "samples": len(samples.sent),
               "resolved": len(samples.lags), "pushed": len(samples.push), "missing": samples.missing(),
               "logged": log_counts(env),
               "post_errors": errors["post"], "read_errors": errors["read"]}
    return SoakResult(opts, seconds, intervals, raw, counts, ceilings, biggest)
