"""``hub bench push``: the websocket gateway (issue 5).

One ``hub serve`` process and the workers as subprocesses; the websocket clients run in
separate client processes (multiprocessing, spawn), so they do not share the server's
event loop.

1. Latency: 1,000 sockets, each subscribed to its own ``notification:<user>`` feed;
   activities posted through the API (signed POSTs) addressed to one of them; time from
   the 202 to the entry frame arriving (time.monotonic is system-wide, so comparable
   across processes).
2. Per-user deliveries/s on one gateway: change messages published straight to the
   gateway's Redis channel (as the fan-out scripts do), one per user, ``counts`` frames
   (no body fetch), counted at the clients.
3. Memory: 5,000 idle subscribed sockets on the server; its RSS growth per socket.
4. Deliveries with two gateways beside one (bench/push_gateways.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import multiprocessing as mp
import random
import resource
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.ceilings import PubSubCeiling, pubsub_ceiling
from bench.common import environment, info, percentile, signed_headers
from bench.cpu import rss_kib
from bench.push_gateways import Gateways, publish_counts, two_gateways
from hub.config import Settings
from hub.domain.tokens import issue_token


@dataclass
class PushResult:
    sockets: int
    posted: int
    received: int
    p50_ms: float
    p99_ms: float
    deliveries_per_s: float
    published: int
    delivered: int
    idle_sockets: int
    rss_kib_per_socket: float
    rate: float = 0.0
    early: int = 0  # frames that arrived before their 202 was read
    post_p50_ms: float = 0.0  # from sending the POST to the frame: an upper bound
    post_p99_ms: float = 0.0
    answer_p50_ms: float = 0.0  # from sending the POST to reading its 202
    answer_p99_ms: float = 0.0
    ceiling: PubSubCeiling | None = None
    gateways: Gateways | None = None

    def report(self) -> str:
        return "\n".join([
            (f"latency: {self.sockets} sockets, {self.posted} activities posted through the API at {self.rate:.0f}/s, "
            f"{self.received} entry frames: 202-to-frame p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms "
            "(targets 20 / 50 ms)"),
            (f"    {self.early} frames arrived before their 202 was read (counted as 0 ms); "
            f"from sending the POST to the frame: p50 {self.post_p50_ms:.1f} ms, p99 {self.post_p99_ms:.1f} ms; "
            f"to its 202: p50 {self.answer_p50_ms:.1f} ms, p99 {self.answer_p99_ms:.1f} ms"),
            (f"deliveries: {self.delivered} of {self.published} per-user frames at {self.deliveries_per_s:,.0f}/s "
            "on one gateway process (target >= 20,000/s)"),
            (f"memory: {self.idle_sockets} idle subscribed sockets, {self.rss_kib_per_socket:.1f} KiB RSS each "
            "(target <= 20 KiB)"),
            *([self.gateways.report(self.deliveries_per_s)] if self.gateways else []),
            *([self.ceiling.report()] if self.ceiling else []),
        ])


# -- client processes ---------------------------------------------------------------------

def _client_proc(url: str, users: list[str], tokens: list[str], q: Any, stop: Any) -> None:
    import uvloop

    uvloop.install()
    asyncio.run(_client_main(url, users, tokens, q, stop))


async def _client_main(url: str, users: list[str], tokens: list[str], q: Any, stop: Any) -> None:
    ws_url = url.replace("http://", "ws://") + "/v1/realtime?token="
    entries: list[tuple[str, float]] = []
    counts = {"n": 0, "first": 0.0, "last": 0.0}
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        sem = asyncio.Semaphore(100)
        sockets: list[aiohttp.ClientWebSocketResponse] = []

        async def open_one(user: str, tok: str) -> None:
            async with sem:
                ws = await s.ws_connect(ws_url + tok, autoping=True, heartbeat=None, max_msg_size=0)
                await ws.send_str(json.dumps({"op": "subscribe", "feed": f"notification:{user}"}))
                msg = await ws.receive(timeout=30)
                assert json.loads(msg.data)["op"] == "subscribed", msg.data
                sockets.append(ws)

        await asyncio.gather(*(open_one(u, t) for u, t in zip(users, tokens)))

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                now = time.monotonic()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                f = json.loads(msg.data)
                if f["op"] == "entry":
                    entries.append((f["entry"]["activities"][0]["object"], now))
                elif f["op"] == "counts":
                    if not counts["n"]:
                        counts["first"] = now
                    counts["n"] += 1
                    counts["last"] = now

        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        q.put(("ready", len(sockets)))
        while not stop.is_set():
            await asyncio.sleep(0.05)
        q.put(("done", entries, counts))
        for t in readers:
            t.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


class Clients:
    def __init__(self, url: str, settings: Settings, users: list[str], procs: int = 2) -> None:
        ctx = mp.get_context("spawn")
        self.q = ctx.Queue()
        self.stop = ctx.Event()
        app = next(iter(settings.apps.values()))
        now = int(time.time())
        toks = [issue_token(app.id, app.key, u, 3600, now=now) for u in users]
        self.procs = [
            ctx.Process(target=_client_proc, args=(url, users[i::procs], toks[i::procs], self.q, self.stop), daemon=True)
            for i in range(procs)
        ]

    async def start(self) -> int:
        for p in self.procs:
            p.start()
        n = 0
        for _ in self.procs:
            kind, k = await asyncio.to_thread(self.q.get, True, 300)
            assert kind == "ready"
            n += k
        return n

    async def finish(self) -> list[Any]:
        self.stop.set()
        out = [await asyncio.to_thread(self.q.get, True, 120) for _ in self.procs]
        for p in self.procs:
            await asyncio.to_thread(p.join, 30)
            if p.is_alive():
                p.kill()
        return out


# -- the scenario ---------------------------------------------------------------------------

async def run_push(settings: Settings, *, quick: bool) -> PushResult:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Workers pick up jobs within 10 ms (the config default is 50 ms). Not lower: arq polls
    # Redis every poll_delay on each queue of each worker, and at 2 ms two idle workers took
    # a third of this 2-core machine, which every other process on the path then waited for.
    settings = dataclasses.replace(settings, worker=dataclasses.replace(settings.worker, poll_delay=0.01))
    n_sockets = 200 if quick else 1000
    n_idle = 500 if quick else 5000
    n_posts = 200 if quick else 1000
    # 100/s: a load this machine sustains end to end. At 200/s, intake, Cassandra and the
    # workers together saturate the 2 cores (the 202 itself then takes ~2 s), and the figure
    # would measure that backlog, not the push path (docs/benchmarks.md, "Push").
    rate = 100.0
    async with environment(settings) as env:
        app = env.app
        server_pid = next(p.pid for n, p in env.procs if n == "server")

        # 1. latency
        users = [f"u{i}" for i in range(n_sockets)]
        clients = Clients(env.url, env.settings, users)
        info(f"connecting {n_sockets} sockets")
        await clients.start()
        sent: dict[str, float] = {}  # tag -> when its 202 was read
        posted: dict[str, float] = {}  # tag -> when its POST was sent
        info(f"posting {n_posts} activities at {rate:.0f}/s")
        async with aiohttp.ClientSession() as http:
            async def post_one(i: int) -> None:
                tag = f"m:{i}"
                body = json.dumps({"actor": f"a{i}", "verb": "like", "object": tag,
                                   "to": [f"notification:{random.choice(users)}"]}).encode()
                posted[tag] = time.monotonic()
                async with http.post(f"{env.url}/v1/apps/{app.id}/activities", data=body,
                                     headers=signed_headers(app, body)) as r:
                    await r.read()
                    if r.status == 202:
                        sent[tag] = time.monotonic()

            tasks = []
            t0 = time.monotonic()
            for i in range(n_posts):
                await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                tasks.append(asyncio.create_task(post_one(i)))
            await asyncio.gather(*tasks)
            await asyncio.sleep(2.0)

            # 2. deliveries: one counts message per user, straight onto its feed's channel.
            total = 20_000 if quick else 100_000
            info(f"publishing {total} per-user changes at up to 40,000/s")
            await publish_counts(env, users, total, 40_000.0)
            await asyncio.sleep(3.0)
        results = await clients.finish()
        lat: list[float] = []
        from_post: list[float] = []
        answers = [(sent[t] - posted[t]) * 1000 for t in sent]
        early = 0
        firsts, lasts, delivered = [], [], 0
        for _, entries, counts in results:
            for tag, t in entries:
                if tag in sent:
                    # The feed is written (and published) before the 202 goes out, so a
                    # frame can beat its 202 to the client: that is 0 ms after the 202.
                    early += t < sent[tag]
                    lat.append(max(0.0, t - sent[tag]) * 1000)
                    from_post.append((t - posted[tag]) * 1000)
            if counts["n"]:
                delivered += counts["n"]
                firsts.append(counts["first"])
                lasts.append(counts["last"])
        dps = delivered / (max(lasts) - min(firsts)) if lasts and max(lasts) > min(firsts) else 0.0

        # 4. the same deliveries over two gateway processes (bench/push_gateways.py)
        gateways = await two_gateways(env, n_sockets, total)

        info("measuring the pub/sub ceiling")
        ceiling = await pubsub_ceiling(env.settings, quick=quick)

        # 3. memory
        await asyncio.sleep(1.0)
        before = rss_kib(server_pid)
        idle = Clients(env.url, env.settings, [f"idle{i}" for i in range(n_idle)])
        info(f"connecting {n_idle} idle sockets")
        n = await idle.start()
        await asyncio.sleep(2.0)
        after = rss_kib(server_pid)
        await idle.finish()
        return PushResult(n_sockets, len(sent), len(lat), percentile(lat, 50), percentile(lat, 99), dps,
                          total, delivered, n, (after - before) / max(1, n), rate, early,
                          percentile(from_post, 50), percentile(from_post, 99),
                          percentile(answers, 50), percentile(answers, 99), ceiling, gateways)
