"""The inbox figures (docs/frontend.md, "Figures"): ``python -m bench.inbox [--posts 200]``.

1. Paint latency: a real `hub serve` and worker (bench.common.environment, a keyspace of its
   own), one headless Chromium tab on ``/demo`` with the ``<hub-inbox>`` element; posts one
   activity at a time (each its own group) and measures from its 202 to the frame in which
   the element shows that group (a MutationObserver in the shadow root, then the next
   animation frame: painted). Clocks: both sides read the same machine's wall clock.
2. Memory per connection: the server's RSS before and after opening N websocket
   subscriptions, then N server-sent event streams (each its own user), divided by N.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
from typing import Any

import aiohttp

from bench.common import bench_settings, environment, info, percentile, run, signed_headers, worker_count
from hub.config import load_settings
from hub.domain.tokens import issue_token

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

WATCH = """() => {
  window.painted = {};
  const root = document.querySelector('hub-inbox').shadowRoot;
  new MutationObserver(() => requestAnimationFrame(() => {
    const now = Date.now();
    for (const t of root.querySelectorAll('li .text')) {
      const m = t.textContent.match(/m:(\\d+)/);
      if (m && !(m[1] in window.painted)) window.painted[m[1]] = now;
    }
  })).observe(root, { childList: true, subtree: true });
}"""


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def paint_latency(env: Any, posts: int) -> list[float]:
    from playwright.async_api import async_playwright

    app = env.app
    tok = issue_token(app.id, app.key, "viewer", 3600, now=int(time.time()))
    done: dict[int, float] = {}
    async with async_playwright() as pw, aiohttp.ClientSession() as http:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        page = await browser.new_page()
        await page.goto(f"{env.url}/demo?token={tok}")
        await page.wait_for_selector("hub-inbox[data-status=live]", timeout=20_000)
        await page.evaluate(WATCH)
        for i in range(posts):
            body = json.dumps({"actor": f"a{i}", "verb": "like", "object": f"m:{i}",
                               "to": ["notification:viewer"]}).encode()
            async with http.post(f"{env.url}/v1/apps/{app.id}/activities", data=body,
                                 headers=signed_headers(app, body)) as r:
                await r.read()
                assert r.status == 202, r.status
                done[i] = time.time() * 1000
            await page.wait_for_function(f"{i} in window.painted", timeout=20_000)
        painted = await page.evaluate("window.painted")
        await browser.close()
    return [painted[str(i)] - done[i] for i in range(posts)]


async def memory_per_connection(env: Any, n: int) -> dict[str, float]:
    app = env.app
    pid = next(p.pid for name, p in env.procs if name == "server")
    out: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        for kind in ("websocket", "sse"):
            await asyncio.sleep(1.0)
            before = _rss_kib(pid)
            held: list[Any] = []
            for i in range(n):
                user = f"{kind}-{i}"
                tok = issue_token(app.id, app.key, user, 3600, now=int(time.time()))
                if kind == "websocket":
                    ws = await http.ws_connect(f"{env.url}/v1/realtime?token={tok}")
                    await ws.send_json({"op": "subscribe", "feed": f"notification:{user}"})
                    await ws.receive()
                    held.append(ws)
                else:
                    r = await http.get(f"{env.url}/v1/realtime/sse", params={"token": tok, "feed": f"notification:{user}"})
                    assert r.status == 200, r.status
                    while b"subscribed" not in await r.content.readline():
                        pass
                    held.append(r)
            await asyncio.sleep(1.0)
            out[kind] = (_rss_kib(pid) - before) / n
            for h in held:
                if kind == "websocket":
                    await h.close()
                else:
                    h.close()
    return out


async def main(posts: int, conns: int) -> None:
    s = bench_settings(load_settings(), f"inbox{int(time.time()) % 100000}", worker_processes=worker_count())
    app = next(iter(s.apps.values()))
    origin = f"http://127.0.0.1:{s.server.port}"
    s = dataclasses.replace(s, apps={app.id: dataclasses.replace(app, allowed_origins=(origin,))})
    async with environment(s) as env:
        info(f"paint latency over {posts} posts")
        lat = await paint_latency(env, posts)
        info(f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms")
        info(f"memory of {conns} websockets, then {conns} SSE streams")
        mem = await memory_per_connection(env, conns)
    print(f"202 -> painted in <hub-inbox>: p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms, "
          f"max {max(lat):.1f} ms over {len(lat)} posts")
    print(f"server RSS per connection: websocket {mem['websocket']:.1f} KiB, SSE {mem['sse']:.1f} KiB "
          f"(mean of {conns} each)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=200)
    ap.add_argument("--conns", type=int, default=500)
    a = ap.parse_args()
    run(main(a.posts, a.conns))
