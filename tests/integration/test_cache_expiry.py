"""Feed caches expire whole after ``fanout.cache_days`` without a read (here: seconds),
a read renews them, fan-out never leaves a key without a TTL, and a read after expiry
answers as before (docs/design.md, Redis memory)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest

from hub.config import FeedGroup, Settings
from hub.core import Hub
from hub.domain.activity import ActivityInput
from hub.ops import fanout
from hub.ops import follow as follow_ops
from hub.ops.reads import mark, read_feed
from tests.conftest import uid
from workers.context import close_hub, open_hub
from workers.jobs.fanout import sweep_pending

APP = "t1"
CACHE_SECONDS = 4
GROUPS = ("timeline", "timeline_aggregated", "notification", "popular")
WEIGHTS = (("likes", 1.0),)


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    s = dataclasses.replace(
        settings, feeds={**settings.feeds, "popular": FeedGroup("popular", "flat", "user", 50, None, "weighted", 1.0,
                                                              WEIGHTS)},
        fanout=dataclasses.replace(settings.fanout, cache_days=CACHE_SECONDS / 86400),
    )
    h = await open_hub(s)
    try:
        yield h
    finally:
        await close_hub(h)


async def _post(hub: Hub, actor: str, verb: str, to: tuple[str, ...] = ()) -> str:
    inp = ActivityInput(actor=actor, verb=verb, object=f"photo:{uid('p')}", time=datetime.now(timezone.utc), to=to)
    a = (await hub.activities.store(APP, inp.with_id(hub.ids.new()))).activity
    await fanout.plan(hub, APP, a.id)
    for chunk in fanout.chunks(sorted(await hub.follows.followers(APP, actor)), 100):
        await fanout.write_chunk(hub, APP, a.id, chunk)
    return a.id


async def _keys(hub: Hub, user: str) -> dict[str, int]:
    """Every key of the user's feeds, with its TTL (seconds; -1: none)."""
    k = hub.feeds.keys(APP)
    out: dict[str, int] = {}
    for g in GROUPS:
        async for key in hub.redis.scan_iter(match=k.feed_tag(f"{g}:{user}") + "*", count=1000):
            out[key] = await hub.redis.ttl(key)
    return out


async def _pages(hub: Hub, user: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for g in GROUPS:
        p = await read_feed(hub, APP, hub.group(g), user, 10, None)
        out[g] = (p.results, p.next, p.unseen, p.unread)
    return out


async def test_an_unread_feed_expires_whole_and_reads_the_same_afterwards(hub: Hub) -> None:
    author, early, late = uid("author"), uid("early"), uid("late")
    for reader in (early, late):
        await follow_ops.follow(hub, APP, reader, author, 0)
    assert await _pages(hub, early) == {g: ([], None, 0, 0) for g in GROUPS}  # built, empty
    assert all(ttl > 0 for ttl in (await _keys(hub, early)).values())

    # Fan-out into the empty caches creates keys (the first group's, the rank index, the
    # change stream of a feed a socket follows): every one of them gets the feed's TTL.
    k = hub.feeds.keys(APP)
    for g in ("timeline", "timeline_aggregated"):
        await hub.redis.set(k.online(f"{g}:{early}"), "1", ex=CACHE_SECONDS - 1)
    for verb in ("like", "post", "like"):
        await _post(hub, author, verb, to=(f"notification:{early}", f"notification:{late}"))
    created = await _keys(hub, early)
    assert len(created) >= 11 and all(ttl > 0 for ttl in created.values()), created
    assert await hub.redis.xlen(k.changes(f"timeline:{early}")) == 3
    for g in GROUPS:  # one instant for all of a feed's keys (the marks and the kept page: their own)
        tag = k.feed_tag(f"{g}:{early}")
        at = {key: await hub.redis.execute_command("PEXPIRETIME", key) for key in created
              if key.startswith(tag) and not key.endswith((":mk", ":ap", ":on"))}
        assert len(at) >= 2 and len(set(at.values())) == 1, at

    before = {u: await _pages(hub, u) for u in (early, late)}
    first = before[early]["notification"][0][0]
    await mark(hub, APP, hub.group("notification"), early, "seen", [first["id"]])
    before[early] = await _pages(hub, early)
    assert before[early]["notification"][2] == before[early]["notification"][3] - 1  # one seen, not read
    for u in (early, late):
        assert all(ttl > 0 for ttl in (await _keys(hub, u)).values())

    # A read renews the TTL of every key: reading `early` at 2.5 s keeps it past 4 s.
    await asyncio.sleep(2.5)
    await _pages(hub, early)
    await asyncio.sleep(2.5)
    assert await _keys(hub, early) and not await _keys(hub, late)  # late's expired, whole

    await asyncio.sleep(CACHE_SECONDS + 0.5)
    assert not await _keys(hub, early)
    # Rebuilt as after a flush: the same pages, marks included.
    assert {u: await _pages(hub, u) for u in (early, late)} == before
    for u in (early, late):
        assert all(ttl > 0 for ttl in (await _keys(hub, u)).values())


async def test_the_sweep_trims_active_records_past_active_days(hub: Hub) -> None:
    """The active set holds the users seen within fanout.active_days, not every user ever."""
    old, recent = uid("old"), uid("recent")
    now = time.time()
    await hub.follows.touch_active(APP, old, now - (hub.settings.fanout.active_days * 86400 + 60))
    await hub.follows.touch_active(APP, recent, now - 60)
    await sweep_pending({"hub": hub}, min_age=0)
    scores = await hub.redis.zmscore(hub.follows.keys(APP).active(), [old, recent])
    assert scores[0] is None and scores[1] is not None


async def test_a_followers_cache_and_a_stream_made_by_a_subscribe_expire(hub: Hub) -> None:
    """The follower cache loaded for a fan-out and the change stream a socket's subscribe
    starts (its gap entry) carry the feed TTL too, so nothing of an idle user stays."""
    from hub.storage.changes import ChangeLog

    author, fan = uid("author"), uid("fan")
    await follow_ops.follow(hub, APP, fan, author, 0)
    k = hub.follows.keys(APP)
    await hub.redis.delete(k.followers(author))
    assert await hub.follows.followers(APP, author) == [fan]  # loaded from Cassandra
    assert 0 < await hub.redis.ttl(k.followers(author)) <= CACHE_SECONDS

    log = ChangeLog(hub.redis, hub.settings.redis.key_prefix, cache_days=CACHE_SECONDS / 86400)
    feed = f"notification:{fan}"
    assert await log.set_online(APP, feed) != ""  # the gap entry
    assert 0 < await hub.redis.ttl(k.changes(feed)) <= CACHE_SECONDS

    await asyncio.sleep(CACHE_SECONDS + 1)
    assert not await hub.redis.exists(k.followers(author), k.changes(feed))
    assert await hub.follows.followers(APP, author) == [fan]  # loads again
