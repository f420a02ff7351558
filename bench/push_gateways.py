"""``hub bench push``, part 4: deliveries per gateway with two gateways beside one.

Each gateway process subscribes only to the channels of feeds its own sockets follow
(docs/design.md, Realtime), so a second ``hub serve`` should add delivery capacity
instead of decoding every change twice. Measured here: a second ``hub serve`` on another
port, the same number of sockets as part 2 split between the two (each on its own
``notification:<user>`` feed), and the same per-user ``counts`` messages published
straight onto the feeds' channels, faster than part 2 so that the gateways, not the
publisher, are the limit. Everything shares this machine's cores, clients and publisher
too, so the figure is what two gateways deliver here, not an upper bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

from bench.common import Environment, config_toml, free_port, info
from hub.storage.redis import Keys


@dataclass
class Gateways:
    sockets: int
    published: int
    delivered: list[int]  # per gateway
    per_s: list[float]  # per gateway, from its first to its last frame

    def report(self, one_gateway: float) -> str:
        each = ", ".join(f"{r:,.0f}/s" for r in self.per_s)
        return (f"two gateways: {sum(self.delivered)} of {self.published} per-user frames over {self.sockets} sockets; "
                f"{sum(self.per_s):,.0f}/s together ({each} each) beside {one_gateway:,.0f}/s on one gateway "
                f"(ratio {sum(self.per_s) / one_gateway if one_gateway else 0:.2f})")


def _rate(results: list[Any]) -> tuple[int, float]:
    """Frames counted by one gateway's client processes, and their rate."""
    n, firsts, lasts = 0, [], []
    for _, _entries, counts in results:
        if counts["n"]:
            n += counts["n"]
            firsts.append(counts["first"])
            lasts.append(counts["last"])
    span = max(lasts) - min(firsts) if lasts else 0.0
    return n, (n / span if span > 0 else 0.0)


async def publish_counts(env: Environment, users: list[str], total: int, per_s: float) -> None:
    """``total`` counts messages round-robin over ``users``' notification feeds."""
    import redis.asyncio as aioredis

    rc = aioredis.Redis.from_url(env.settings.redis.url)
    keys = Keys(env.settings.redis.key_prefix, env.app.id)
    chunk = 500
    t0 = time.monotonic()
    try:
        for start in range(0, total, chunk):
            pipe = rc.pipeline(transaction=False)
            for j in range(start, min(total, start + chunk)):
                feed = f"notification:{users[j % len(users)]}"
                pipe.execute_command("SPUBLISH", keys.channel(feed), json.dumps(
                    {"app": env.app.id, "feed": feed, "op": "counts", "unseen": j, "unread": j}))
            await pipe.execute()
            await asyncio.sleep(max(0.0, t0 + (start + chunk) / per_s - time.monotonic()))
    finally:
        await rc.aclose()


async def two_gateways(env: Environment, n_sockets: int, total: int) -> Gateways:
    from bench.push import Clients

    s = env.settings
    second = dataclasses.replace(s, server=dataclasses.replace(s.server, port=free_port()))
    config = env.tmp / "config-gateway2.toml"
    config.write_text(config_toml(second))
    url2 = f"http://127.0.0.1:{second.server.port}"
    env.spawn("server2", ["serve"], config=config)
    await env.wait_ready(url2)
    half = n_sockets // 2
    sides = [(env.url, [f"g1u{i}" for i in range(half)]), (url2, [f"g2u{i}" for i in range(half)])]
    clients = [Clients(url, s, users) for url, users in sides]
    info(f"connecting {2 * half} sockets, half to each of two gateways")
    for c in clients:
        await c.start()
    everyone = [u for _, users in sides for u in users]
    info(f"publishing {total} per-user changes over both gateways' feeds")
    await publish_counts(env, everyone, total, 100_000.0)
    await asyncio.sleep(3.0)
    rates = [_rate(await c.finish()) for c in clients]
    return Gateways(2 * half, total, [n for n, _ in rates], [r for _, r in rates])
