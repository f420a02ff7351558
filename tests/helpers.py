"""Helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from hub.config import Settings
from hub.core import Hub
from hub.domain.activity import parse_activity
from hub.domain.tokens import issue_token
from hub.ops import fanout, intake, rebuild


async def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False


async def feed_ids(hub: Hub, app: str, group: str, user: str) -> list[str]:
    g = hub.settings.feeds[group]
    await rebuild.ensure_built(hub, app, g, user)
    if g.is_aggregated:
        return [i for st in await hub.feeds.groups(app, f"{group}:{user}", 1000) for i in st.members]
    return await hub.feeds.flat_ids(app, f"{group}:{user}", 1000)


def token(settings: Settings, user: str, app: str = "t1", ttl: int = 600) -> str:
    a = settings.apps[app]
    return issue_token(a.id, a.key, user, ttl, now=int(time.time()))


async def post(hub: Hub, app: str, **fields: object) -> str:
    """Store and fan out synchronously: the worker's jobs, run inline."""
    (res,) = await intake.accept(hub, app, [parse_activity(fields, now=datetime.now(timezone.utc))], batch=False)
    aid = str(res["id"])
    await fanout.plan(hub, app, aid)
    followers = await hub.follows.followers(app, str(fields["actor"]))
    await fanout.write_chunk(hub, app, aid, followers)
    return aid
