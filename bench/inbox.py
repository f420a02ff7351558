"""``hub bench inbox [--quick]``: the inbox figures (docs/frontend.md, "Figures").

1. Paint latency: a real `hub serve` and worker (bench.common.environment, a keyspace of its
   own), one headless Chromium tab on ``/demo`` with the ``<hub-inbox>`` element; posts one
   activity at a time (each its own group) and measures from its 202 to the frame in which
   the element shows that group (a MutationObserver in the shadow root, then the next
   animation frame: painted). Clocks: both sides read the same machine's wall clock.
2. Memory per connection: the server's RSS before and after opening N websocket
   subscriptions, then N server-sent event streams beside them (each its own user, all
   held to the end), divided by N.
3. Ceilings, measured in the same run the same way (bench/bare.py, an aiohttp server with
   no hub code, in its own process): a websocket message's answer-to-painted in the same
   Chromium, and the RSS of N bare websockets and N bare event streams.

Also ``python -m bench.inbox [--posts 200] [--conns 500]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.common import (
    ROOT,
    bench_settings,
    environment,
    free_port,
    info,
    percentile,
    run,
    signed_headers,
    worker_count,
)
from bench.cpu import rss_kib
from hub.config import Settings, load_settings
from hub.domain.tokens import issue_token

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

WATCH = """(host) => {
  window.painted = {};
  const root = document.querySelector(host).shadowRoot;
  new MutationObserver(() => requestAnimationFrame(() => {
    const now = Date.now();
    for (const t of root.querySelectorAll('li .text')) {
      const m = t.textContent.match(/m:(\\d+)/);
      if (m && !(m[1] in window.painted)) window.painted[m[1]] = now;
    }
  })).observe(root, { childList: true, subtree: true });
}"""


@dataclass
class InboxResult:
    posts: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    conns: int
    ws_kib: float
    sse_kib: float
    bare_p50_ms: float
    bare_p99_ms: float
    bare_ws_kib: float
    bare_sse_kib: float

    def report(self) -> str:
        return "\n".join([
            (f"202 -> painted in <hub-inbox>: p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
             f"max {self.max_ms:.1f} ms over {self.posts} posts"),
            (f"ceiling: a bare aiohttp websocket message, answer -> painted in the same Chromium: "
             f"p50 {self.bare_p50_ms:.1f} ms, p99 {self.bare_p99_ms:.1f} ms"),
            (f"server RSS per connection: websocket {self.ws_kib:.1f} KiB, SSE {self.sse_kib:.1f} KiB "
             f"(mean of {self.conns} each)"),
            (f"ceiling: a bare aiohttp server: websocket {self.bare_ws_kib:.1f} KiB, "
             f"event stream {self.bare_sse_kib:.1f} KiB per connection"),
        ])


async def _paint(page: Any, host: str, posts: int, post: Callable[[int], Awaitable[None]]) -> list[float]:
    """ms from each ``post(i)``'s answer to the frame that paints ``m:<i>`` (one at a time)."""
    await page.evaluate(WATCH, host)
    done: dict[int, float] = {}
    for i in range(posts):
        await post(i)
        done[i] = time.time() * 1000
        await page.wait_for_function(f"{i} in window.painted", timeout=20_000)
    painted = await page.evaluate("window.painted")
    return [painted[str(i)] - done[i] for i in range(posts)]


async def paint_latency(env: Any, posts: int, bare_url: str) -> tuple[list[float], list[float]]:
    """The hub's 202 -> painted, then the bare server's answer -> painted, in one browser."""
    from playwright.async_api import async_playwright

    app = env.app
    tok = issue_token(app.id, app.key, "viewer", 3600, now=int(time.time()))
    async with async_playwright() as pw, aiohttp.ClientSession() as http:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        page = await browser.new_page()
        await page.goto(f"{env.url}/demo?token={tok}")
        await page.wait_for_selector("hub-inbox[data-status=live]", timeout=20_000)

        async def post(i: int) -> None:
            body = json.dumps({"actor": f"a{i}", "verb": "like", "object": f"m:{i}",
                               "to": ["notification:viewer"]}).encode()
            async with http.post(f"{env.url}/v1/apps/{app.id}/activities", data=body,
                                 headers=signed_headers(app, body)) as r:
                await r.read()
                assert r.status == 202, r.status

        hub = await _paint(page, "hub-inbox", posts, post)
        bare_page = await browser.new_page()
        await bare_page.goto(f"{bare_url}/page")
        await bare_page.wait_for_selector("body[data-status=live]", state="attached", timeout=20_000)

        async def send(i: int) -> None:
            async with http.post(f"{bare_url}/send", params={"i": str(i)}) as r:
                assert r.status == 204, r.status

        bare = await _paint(bare_page, "#host", posts, send)
        await browser.close()
    return hub, bare


async def memory_per_connection(pid: int, n: int, ws_url: Callable[[str], str],
                                sse_url: Callable[[str], str]) -> dict[str, float]:
    """KiB of ``pid``'s RSS per connection: ``n`` websockets (a subscribe each), then ``n``
    event streams (each read to its first event) beside them, each for its own user. Both
    kinds stay open to the end, so the streams cannot reuse memory the sockets freed."""
    out: dict[str, float] = {}
    held: list[Any] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        for kind in ("websocket", "sse"):
            await asyncio.sleep(1.0)
            before = rss_kib(pid)
            for i in range(n):
                user = f"{kind}-{i}"
                if kind == "websocket":
                    ws = await http.ws_connect(ws_url(user))
                    await ws.send_json({"op": "subscribe", "feed": f"notification:{user}"})
                    await ws.receive()
                    held.append(ws)
                else:
                    r = await http.get(sse_url(user))
                    assert r.status == 200, r.status
                    while b"subscribed" not in await r.content.readline():
                        pass
                    held.append(r)
            await asyncio.sleep(1.0)
            out[kind] = (rss_kib(pid) - before) / n
        for h in held:
            if isinstance(h, aiohttp.ClientWebSocketResponse):
                await h.close()
            else:
                h.close()
    return out


@contextlib.asynccontextmanager
async def bare_server() -> AsyncIterator[tuple[str, int]]:
    """bench/bare.py in its own process: (its URL, its pid)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.bare", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    async with s.get(url + "/page") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


async def run_inbox(settings: Settings, *, quick: bool = False, posts: int | None = None,
                    conns: int | None = None) -> InboxResult:
    posts = posts or (20 if quick else 200)
    conns = conns or (50 if quick else 500)
    app = next(iter(settings.apps.values()))
    origin = f"http://127.0.0.1:{settings.server.port}"
    s = dataclasses.replace(settings, apps={app.id: dataclasses.replace(app, allowed_origins=(origin,))})
    async with environment(s) as env, bare_server() as (bare_url, bare_pid):
        info(f"paint latency over {posts} posts (the hub, then the bare server)")
        lat, bare_lat = await paint_latency(env, posts, bare_url)
        info(f"memory of {conns} websockets, then {conns} SSE streams (the hub, then the bare server)")
        server = next(p.pid for name, p in env.procs if name == "server")

        def token(user: str) -> str:
            return issue_token(app.id, app.key, user, 3600, now=int(time.time()))

        ws_base = env.url.replace("http", "ws", 1)
        mem = await memory_per_connection(
            server, conns, lambda u: f"{ws_base}/v1/realtime?token={token(u)}",
            lambda u: f"{env.url}/v1/realtime/sse?token={token(u)}&feed=notification:{u}")
        bare_ws = bare_url.replace("http", "ws", 1)
        bare = await memory_per_connection(bare_pid, conns, lambda u: f"{bare_ws}/ws", lambda u: f"{bare_url}/sse")
    return InboxResult(posts=posts, p50_ms=percentile(lat, 50), p99_ms=percentile(lat, 99), max_ms=max(lat),
                       conns=conns, ws_kib=mem["websocket"], sse_kib=mem["sse"],
                       bare_p50_ms=percentile(bare_lat, 50), bare_p99_ms=percentile(bare_lat, 99),
                       bare_ws_kib=bare["websocket"], bare_sse_kib=bare["sse"])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=200)
    ap.add_argument("--conns", type=int, default=500)
    a = ap.parse_args()
    s = bench_settings(load_settings(), f"inbox{int(time.time()) % 100000}", worker_processes=worker_count())
    print(run(run_inbox(s, posts=a.posts, conns=a.conns)).report())
