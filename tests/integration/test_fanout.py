"""Intake and fan-out end to end: signed API, real Cassandra, real Redis, a real worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hub.config import Settings
from hub.core import Hub
from hub.domain.activity import ActivityInput
from hub.domain.models import Activity
from hub.ops import fanout, intake, rebuild
from hub.ops import follow as follow_ops
from hub.queue import FANOUT, FANOUT_CHUNK, HIGH, LOW, queue_name
from hub.storage.pending import PendingBatch, minute_bucket
from tests.conftest import AppCaller, uid
from tests.helpers import feed_ids, wait_for
from workers.context import close_hub, open_hub
from workers.jobs.fanout import fanout_chunk, sweep_pending


async def test_post_fans_out_to_followers_and_targets(t1: AppCaller, hub: Hub, worker: None) -> None:
    alice, bob, carol = uid("alice"), uid("bob"), uid("carol")
    for f in (bob, carol):
        r = await t1.call("PUT", "/follows", {"follower": f, "followee": alice})
        assert r.status == 204, await r.text()
    # Followers' feeds are cached (as an active user's would be) before the post.
    for f in (bob, carol):
        assert await feed_ids(hub, "t1", "timeline", f) == []
        assert await feed_ids(hub, "t1", "timeline_aggregated", f) == []
    r = await t1.call("POST", "/activities", {"actor": alice, "verb": "like", "object": "photo:42",
                                              "to": [f"notification:{uid('dan')}"]})
    assert r.status == 202, await r.text()
    (res,) = (await r.json())["activities"]
    aid = res["id"]

    async def arrived() -> bool:
        return all([aid in await feed_ids(hub, "t1", "timeline", f) for f in (bob, carol)]) and \
            aid in await feed_ids(hub, "t1", "timeline_aggregated", carol)

    assert await wait_for(arrived)
    assert await feed_ids(hub, "t1", "user", alice) == [aid]


# --- fan-out run by hand (no worker): the same calls a worker's jobs make -----------------

APP = "t1"


async def store(hub: Hub, actor: str, verb: str = "like", obj: str | None = None, *,
                when: datetime | None = None, to: tuple[str, ...] = ()) -> Activity:
    """Store an activity durably, as intake does, without queueing its fan-out."""
    inp = ActivityInput(actor=actor, verb=verb, object=obj or f"photo:{uid('p')}",
                        time=when or datetime.now(timezone.utc), to=to)
    return (await hub.activities.store(APP, inp.with_id(hub.ids.new()))).activity


async def fan(hub: Hub, activity: Activity) -> None:
    """Plan and write every follower chunk in this process (what the worker would do)."""
    await fanout.plan(hub, APP, activity.id)
    followers = sorted(await hub.follows.followers(APP, activity.actor))
    for chunk in fanout.chunks(followers, hub.settings.fanout.chunk_size):
        await fanout.write_chunk(hub, APP, activity.id, chunk)


async def post(hub: Hub, actor: str, verb: str = "like", **kw: Any) -> Activity:
    a = await store(hub, actor, verb, **kw)
    await fan(hub, a)
    return a


async def cache(hub: Hub, *users: str) -> None:
    """Build (cache) the users' timelines, as reading them would."""
    for u in users:
        for g in ("timeline", "timeline_aggregated"):
            await rebuild.ensure_built(hub, APP, hub.settings.feeds[g], u)


async def groups(hub: Hub, group: str, user: str) -> list[tuple[str, list[str], str]]:
    await rebuild.ensure_built(hub, APP, hub.settings.feeds[group], user)
    return [(st.key, sorted(st.members), st.created_at)
            for st in await hub.feeds.groups(APP, f"{group}:{user}", 1000)]


async def drop(hub: Hub, *users: str) -> None:
    for u in users:
        for g in ("timeline", "timeline_aggregated"):
            await hub.feeds.drop(APP, f"{g}:{u}")


async def both(hub: Hub, user: str) -> tuple[list[str], list[str]]:
    return (await feed_ids(hub, APP, "timeline", user), await feed_ids(hub, APP, "timeline_aggregated", user))


async def test_fanout_is_idempotent(hub: Hub) -> None:
    author, f1, f2 = uid("author"), uid("f"), uid("f")
    for f in (f1, f2):
        await follow_ops.follow(hub, APP, f, author, 0)
    await cache(hub, f1, f2)
    a = await store(hub, author, "like")
    b = await store(hub, author, "like")
    for _ in range(2):
        for x in (a, b):
            await fan(hub, x)
    # A third time, chunk by chunk, with the whole follower list in one chunk.
    assert await fanout.write_chunk(hub, APP, a.id, [f1, f2]) == 0
    for f in (f1, f2):
        flat, agg = await both(hub, f)
        assert flat == [b.id, a.id]
        assert sorted(agg) == sorted([a.id, b.id])
        (g,) = await groups(hub, "timeline_aggregated", f)
        assert g[1] == sorted([a.id, b.id])  # activity_count 2, not 4 or 6
    assert await feed_ids(hub, APP, "user", author) == [b.id, a.id]


async def test_follow_copies_newest_activities(hub: Hub) -> None:
    author, cached, cold = uid("author"), uid("cached"), uid("cold")
    old = [await post(hub, author, "like") for _ in range(5)]
    newest3 = sorted(x.id for x in old[-3:])
    await cache(hub, cached)
    assert await both(hub, cached) == ([], [])
    await follow_ops.follow(hub, APP, cached, author, 3)
    flat, agg = await both(hub, cached)
    assert sorted(flat) == newest3 and sorted(agg) == newest3
    # A follower whose feeds are not cached: rebuilt later, the same three plus what came after.
    await follow_ops.follow(hub, APP, cold, author, 3)
    later = [await post(hub, author, "like") for _ in range(2)]
    expected = sorted(newest3 + [x.id for x in later])
    for u in (cold, cached):
        flat, agg = await both(hub, u)
        assert sorted(flat) == expected, u
        assert sorted(agg) == expected, u
    # Following again changes nothing.
    assert not await follow_ops.follow(hub, APP, cached, author, 5)
    assert sorted((await both(hub, cached))[0]) == expected


async def test_unfollow_removes_or_keeps_history(hub: Hub) -> None:
    a_author, b_author = uid("a"), uid("b")
    gone, keeper = uid("gone"), uid("keeper")
    for u in (gone, keeper):
        await follow_ops.follow(hub, APP, u, a_author, 0)
        await follow_ops.follow(hub, APP, u, b_author, 0)
    await cache(hub, gone, keeper)
    a_ids = [(await post(hub, a_author, verb)).id for verb in ("like", "post", "like")]
    b_ids = [(await post(hub, b_author, "like")).id]
    for u in (gone, keeper):
        flat, agg = await both(hub, u)
        assert sorted(flat) == sorted(a_ids + b_ids) == sorted(agg)

    assert await follow_ops.unfollow(hub, APP, gone, a_author, keep_history=False)
    assert await follow_ops.unfollow(hub, APP, keeper, a_author, keep_history=True)
    assert not await follow_ops.unfollow(hub, APP, keeper, a_author, keep_history=True)
    after = await post(hub, a_author, "like")  # after the unfollow: reaches neither
    b_after = await post(hub, b_author, "post")

    expect_gone = sorted(b_ids + [b_after.id])
    expect_keep = sorted(a_ids + b_ids + [b_after.id])
    for rebuilt in (False, True):
        if rebuilt:  # Redis lost the caches: the rebuild gives the same feeds
            await drop(hub, gone, keeper)
        flat, agg = await both(hub, gone)
        assert sorted(flat) == expect_gone and sorted(agg) == expect_gone, rebuilt
        flat, agg = await both(hub, keeper)
        assert sorted(flat) == expect_keep and sorted(agg) == expect_keep, rebuilt
        assert after.id not in flat and after.id not in agg


async def test_celebrity_is_not_fanned_out(settings: Settings) -> None:
    small = dataclasses.replace(settings, fanout=dataclasses.replace(settings.fanout, celebrity_threshold=3))
    hub = await open_hub(small)
    try:
        star, fans = uid("star"), [uid("fan") for _ in range(4)]
        for f in fans:
            await follow_ops.follow(hub, APP, f, star, 0)
        await cache(hub, *fans)
        a = await store(hub, star, "post")
        assert await fanout.plan(hub, APP, a.id) == 0
        assert star in await hub.follows.celebrities(APP)
        high = await hub.queue.queued_jobs(queue_name=queue_name(small.redis, HIGH))
        low = await hub.queue.queued_jobs(queue_name=queue_name(small.redis, LOW))
        assert not [j for j in high + low if j.function == FANOUT_CHUNK and j.args[1] == a.id]
        # Its own feed has it; the fans' feeds do not, cached or rebuilt.
        assert await feed_ids(hub, APP, "user", star) == [a.id]
        for f in fans:
            assert await both(hub, f) == ([], [])
        await drop(hub, *fans)
        for f in fans:
            assert await both(hub, f) == ([], [])
    finally:
        await close_hub(hub)


async def test_redis_flush_loses_no_entry(hub: Hub, redis: Any) -> None:
    a_author, b_author, reader = uid("a"), uid("b"), uid("reader")
    for author in (a_author, b_author):
        await follow_ops.follow(hub, APP, reader, author, 0)
    await cache(hub, reader)
    now = datetime.now(timezone.utc)
    for n, (author, verb, days) in enumerate([
        (a_author, "like", 3), (b_author, "like", 3), (a_author, "post", 2), (b_author, "like", 1),
        (a_author, "like", 3), (b_author, "post", 0), (a_author, "post", 2), (a_author, "like", 0),
    ]):
        await post(hub, author, verb, when=now - timedelta(days=days, minutes=n))
    flat_before = await feed_ids(hub, APP, "timeline", reader)
    groups_before = await groups(hub, "timeline_aggregated", reader)
    assert len(flat_before) == 8 and len(groups_before) == 5
    assert sum(len(g[1]) for g in groups_before) == 8

    # Drop only this reader's caches, then every key of the app (a full flush for it).
    await drop(hub, reader)
    assert await feed_ids(hub, APP, "timeline", reader) == flat_before
    assert await groups(hub, "timeline_aggregated", reader) == groups_before
    keys = [k for pattern in hub.feeds.keys(APP).patterns() async for k in redis.scan_iter(match=pattern, count=1000)]
    for i in range(0, len(keys), 500):
        await redis.delete(*keys[i : i + 500])
    assert await feed_ids(hub, APP, "timeline", reader) == flat_before
    assert await groups(hub, "timeline_aggregated", reader) == groups_before
    # And fan-out keeps writing into the rebuilt caches.
    more = await post(hub, a_author, "like")
    assert (await feed_ids(hub, APP, "timeline", reader))[0] == more.id


async def test_a_chunk_that_fails_for_good_leaves_its_feeds_to_a_rebuild(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fan-out chunk meeting a bug (not an outage) fails for good, and no marker names
    its activity any more: its followers' cached feeds are dropped, so they rebuild from
    Cassandra with the activity. Followers of other chunks keep their caches."""
    author, f1, f2, other = uid("author"), uid("f"), uid("f"), uid("other")
    for f in (f1, f2, other):
        await follow_ops.follow(hub, APP, f, author, 0)
    await cache(hub, f1, f2, other)
    a = await store(hub, author, "like")

    async def broken(*_: Any) -> int:
        raise ValueError("a bug in the write")

    monkeypatch.setattr(hub.feeds, "add", broken)
    with pytest.raises(ValueError):
        await fanout_chunk({"hub": hub, "job_try": 1}, APP, a.id, [f1, f2], 2)
    monkeypatch.undo()
    groups_ = ("timeline", "timeline_aggregated")
    assert not any([await hub.feeds.is_built(APP, hub.settings.feeds[g], f"{g}:{f}") for g in groups_ for f in (f1, f2)])
    assert all([await hub.feeds.is_built(APP, hub.settings.feeds[g], f"{g}:{other}") for g in groups_])
    for f in (f1, f2):
        assert await both(hub, f) == ([a.id], [a.id])  # rebuilt, with the activity


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    from workers.main import run_workers

    stop = asyncio.Event()
    task = asyncio.create_task(run_workers(settings, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_sweep_fans_out_an_activity_never_queued(hub: Hub, settings: Settings) -> None:
    author, reader = uid("author"), uid("reader")
    await follow_ops.follow(hub, APP, reader, author, 0)
    await cache(hub, reader)
    # Stored, then the process "died" before queueing the fan-out.
    a = await store(hub, author, "post")
    minutes = range(minute_bucket() - 2, minute_bucket() + 1)
    assert a.id in [i for b in await hub.activities.markers.read(APP, minutes) for i in b.ids]
    assert await sweep_pending({"hub": hub}, min_age=0) >= 1
    async with running_worker(settings):
        async def arrived() -> bool:
            flat, agg = await both(hub, reader)
            return flat == [a.id] and agg == [a.id]

        assert await wait_for(arrived)
        assert await wait_for(lambda: _not_pending(hub, a.id, minutes))
    assert await feed_ids(hub, APP, "user", author) == [a.id]


async def _not_pending(hub: Hub, activity_id: str, minutes: range) -> bool:
    return activity_id not in [i for b in await hub.activities.markers.read(APP, minutes) for i in b.ids]


async def test_a_queued_marker_leaves_no_row_and_the_sweep_clears_an_inserted_one(hub: Hub) -> None:
    app, minute, markers = uid("app"), minute_bucket(), hub.activities.markers
    assert await markers.mark(app, minute, ["b2", "b1"]) == "b1"
    assert await markers.read(app, [minute]) == [PendingBatch(minute, "b1", ("b1", "b2"))]
    await markers.queued(app, minute, "b1")
    assert await markers.read(app, [minute]) == []  # the cell's delete took its row
    # Written by an older hub, with INSERT: a cell delete leaves its row marker behind,
    # so the sweep deletes whole rows.
    await hub.db.execute("INSERT INTO {ks}.pending_fanout (app, minute, id, ids) VALUES (%s, %s, %s, %s)",
                         (app, minute, "c1", '["c1"]'))
    await markers.queued(app, minute, "c1")
    assert await markers.read(app, [minute]) == [PendingBatch(minute, "c1", ("c1",))]
    await markers.swept(app, minute, "c1")
    assert await markers.read(app, [minute]) == []


async def test_active_followers_get_high_priority_chunks(settings: Settings) -> None:
    small = dataclasses.replace(settings, fanout=dataclasses.replace(settings.fanout, chunk_size=2))
    hub = await open_hub(small)
    try:
        author = uid("author")
        active = sorted(uid("active") for _ in range(3))
        inactive = sorted(uid("idle") for _ in range(2))
        for f in active + inactive:
            await follow_ops.follow(hub, APP, f, author, 0)
        now = time.time()
        for f in active:
            await hub.follows.touch_active(APP, f, now)
        # Seen, but longer ago than fanout.active_days: low priority.
        await hub.follows.touch_active(APP, inactive[0], now - (small.fanout.active_days + 1) * 86400)
        a = await store(hub, author, "post")
        assert await fanout.plan(hub, APP, a.id) == 3  # 2 high (3 users), 1 low

        async def chunks_on(priority: str) -> dict[str, list[str]]:
            jobs = await hub.queue.queued_jobs(queue_name=queue_name(small.redis, priority))
            return {j.job_id: j.args[2] for j in jobs if j.function == FANOUT_CHUNK and j.args[1] == a.id}

        high, low = await chunks_on(HIGH), await chunks_on(LOW)
        assert sorted(high) == [f"chunk:{APP}:{a.id}:high:0", f"chunk:{APP}:{a.id}:high:1"]
        assert sorted(u for c in high.values() for u in c) == active
        assert low == {f"chunk:{APP}:{a.id}:low:0": inactive}
        # Planning again (a re-run after a crash) queues no second copy of any chunk.
        await fanout.plan(hub, APP, a.id)
        assert await chunks_on(HIGH) == high and await chunks_on(LOW) == low
    finally:
        await close_hub(hub)


async def test_a_long_plan_continues_in_a_new_job(hub: Hub, settings: Settings) -> None:
    """Past its time budget a plan job queues the rest of its activities as a new job."""
    author, reader = uid("author"), uid("reader")
    await follow_ops.follow(hub, APP, reader, author, 0)
    stored = [await store(hub, author, "post") for _ in range(3)]
    ids = sorted(a.id for a in stored)
    # A zero budget plans the first activity, then hands the other two on.
    await fanout.plan_many(hub, APP, ids, budget=0)
    jobs = {j.job_id: j for q in (HIGH, LOW)
            for j in await hub.queue.queued_jobs(queue_name=queue_name(settings.redis, q))}
    assert any(k.startswith(f"chunk:{APP}:{ids[0]}:") for k in jobs)
    assert not any(k.startswith(f"chunk:{APP}:{ids[1]}:") or k.startswith(f"chunk:{APP}:{ids[2]}:") for k in jobs)
    # Own feeds were written for all three before the budget ran out: the rest skips them.
    assert list(jobs[f"fanout:{APP}:{ids[0]}:{ids[1]}"].args) == [APP, ids[1:], True, None]


async def test_intake_queues_no_plan_for_authors_the_cache_knows_have_no_followers(
    hub: Hub, settings: Settings
) -> None:
    author, other, reader = uid("author"), uid("other"), uid("reader")

    async def accept(*actors: str) -> list[str]:
        inputs = [ActivityInput(actor=a, verb="post", object=f"note:{uid('n')}", time=datetime.now(timezone.utc))
                  for a in actors]
        return [r["id"] for r in await intake.accept(hub, APP, inputs, batch=len(inputs) > 1)]

    async def planned(ids: list[str]) -> bool:
        jobs = await hub.queue.queued_jobs(queue_name=queue_name(settings.redis, HIGH))
        return any(j.function == FANOUT and j.job_id == f"fanout:{APP}:{min(ids)}" for j in jobs)

    # Nothing cached about the author yet: the job is queued, and it would load the cache.
    first = await accept(author)
    assert await planned(first)
    assert await hub.follows.followers(APP, author) == []  # loads it, as the job does
    minutes = range(minute_bucket() - 2, minute_bucket() + 1)
    # Known to have no followers: stored, in the own feed, no longer pending, and no job.
    second = await accept(author)
    assert not await planned(second)
    assert (await feed_ids(hub, APP, "user", author))[0] == second[0]
    assert await _not_pending(hub, second[0], minutes)
    # One author of the group with followers is enough for a job.
    await hub.follows.followers(APP, other)
    await follow_ops.follow(hub, APP, reader, other, 0)
    assert await planned(await accept(author, other))
    assert await planned(await accept(other))
