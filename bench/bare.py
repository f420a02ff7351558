"""The inbox figures' ceiling: an aiohttp server with no hub code (``python -m bench.bare PORT``).

Run as its own process so its RSS can be read like the hub server's. It serves:

- ``GET /page``: a page whose shadow root gets one ``<li>`` per websocket message, the
  same way ``<hub-inbox>`` paints a group (bench/inbox.py times it the same way);
- ``GET /ws``: a websocket that answers its first message and is then held open; the
  first socket opened by ``/page`` receives what ``POST /send`` names;
- ``POST /send?i=N``: sends ``{"i": N, "sent": <ms since the epoch>}`` to the page's socket;
- ``GET /sse``: a server-sent event stream that writes one event and is then held open.

So the figures read as "the hub beside the floor of the same browser, machine and web
framework": frames without fan-out, storage or JSON entries; connections without a gateway.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiohttp import web

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bare</title></head><body>
<div id="host"></div>
<script type="module">
  const root = document.getElementById("host").attachShadow({ mode: "open" });
  const list = document.createElement("ul");
  root.appendChild(list);
  const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws?page=1");
  ws.onopen = () => ws.send("hello");
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.op === "ready") { document.body.dataset.status = "live"; return; }
    const li = document.createElement("li");
    li.innerHTML = '<span class="text">someone liked m:' + m.i + "</span>";
    list.prepend(li);
  };
</script></body></html>"""

PAGE_SOCKET = web.AppKey("page_socket", list)


async def page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


async def ws(request: web.Request) -> web.WebSocketResponse:
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    await sock.receive()
    await sock.send_str('{"op": "ready"}')
    if request.query.get("page"):
        request.app[PAGE_SOCKET].append(sock)
    async for _ in sock:  # held open until the client closes it
        pass
    return sock


async def send(request: web.Request) -> web.Response:
    socks = request.app[PAGE_SOCKET]
    await socks[-1].send_str(json.dumps({"i": int(request.query["i"]), "sent": time.time() * 1000}))
    return web.Response(status=204)


async def sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    await resp.write(b'event: subscribed\ndata: {"op": "subscribed"}\n\n')
    while True:  # held open until the client leaves (the write fails) or the server stops
        await asyncio.sleep(15)
        await resp.write(b": ping\n\n")


def main(port: int) -> None:
    app = web.Application()
    app[PAGE_SOCKET] = []
    app.add_routes([web.get("/page", page), web.get("/ws", ws), web.post("/send", send), web.get("/sse", sse)])
    web.run_app(app, host="127.0.0.1", port=port, print=None, shutdown_timeout=1.0)  # held streams: no grace


if __name__ == "__main__":
    main(int(sys.argv[1]))
