"""No fan-out lost on retry (issue 18): a post whose first try failed against Cassandra
(503) and whose retry was accepted (202, carrying the first try's id) reaches every
follower's cached feed, whatever the sweep did in between.

The reproduction, step by step with real services: the first try reaches Cassandra
through a relay that is cut (a real outage as that try sees it: its foreign id stays
claimed ``<id>?`` and nothing is stored); the retry finds that claim and, while it waits
for it to be confirmed, has already written a pending marker naming the first try's id
but not yet its rows; a sweep pass runs then (the cron runs it every 30 s) and a worker
runs the job it queued, which finds nothing stored. Before the fix that job's kept
result made the retry's queueing a no-op, and both the sweep and intake had deleted the
marker, so nothing was left to find the activity again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest

from hub.config import Settings
from hub.core import Hub
from hub.domain.activity import ActivityInput
from hub.errors import Unavailable
from hub.ops import follow as follow_ops
from hub.ops import intake, rebuild
from hub.queue import HIGH, queue_name
from hub.storage.pending import minute_bucket
from tests.conftest import make_app, uid
from tests.helpers import wait_for
from tests.wire import TcpProxy
from workers.context import close_hub, open_hub
from workers.jobs.fanout import sweep_pending

APP = "rf"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A queue (key prefix) and an app of this test's own: no other test's markers or jobs
    are swept or counted here."""
    return dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, key_prefix=f"{settings.redis.key_prefix}:{uid('rf')}"),
                               apps={APP: make_app(APP)})


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    h = await open_hub(settings)
    yield h
    await close_hub(h)


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


@contextlib.asynccontextmanager
async def hub_through_cut_relay(settings: Settings) -> AsyncIterator[Hub]:
    """A hub whose Cassandra is reached through a relay, cut once the hub is open."""
    relay = TcpProxy(settings.cassandra.hosts[0], settings.cassandra.port)
    port = await relay.start()
    cut = dataclasses.replace(settings, cassandra=dataclasses.replace(
        settings.cassandra, hosts=("127.0.0.1",), port=port, request_timeout=2.0))
    h = await open_hub(cut)
    await relay.cut()
    try:
        yield h
    finally:
        await close_hub(h)


async def pending_ids(hub: Hub) -> set[str]:
    minutes = range(minute_bucket() - 2, minute_bucket() + 1)
    return {i for b in await hub.activities.markers.read(APP, minutes) for i in b.ids}


async def queue_empty(hub: Hub, settings: Settings) -> bool:
    return not await hub.queue.queued_jobs(queue_name=queue_name(settings.redis, HIGH))


async def test_a_retry_whose_marker_was_swept_early_is_still_fanned_out(hub: Hub, settings: Settings) -> None:
    author, readers, fid = uid("author"), [uid("reader") for _ in range(3)], uid("fid")
    for r in readers:
        await follow_ops.follow(hub, APP, r, author, 0)
        await rebuild.ensure_built(hub, APP, hub.settings.feeds["timeline"], r)  # cached, as if read

    def activity() -> ActivityInput:
        return ActivityInput(actor=author, verb="post", object="note:1", foreign_id=fid,
                             time=datetime(2026, 1, 1, tzinfo=timezone.utc))

    async with running_worker(settings):
        # First try: Cassandra is unreachable for it; it answers 503 with its claim marked
        # failed. Left pending instead (as when Redis failed too, so the mark was lost),
        # the retry waits for it: the window this test is about.
        async with hub_through_cut_relay(settings) as down:
            with pytest.raises(Unavailable):
                await intake.accept(down, APP, [activity()], batch=False)
        key = hub.activities.keys(APP).foreign_id(fid)
        raw = await hub.redis.get(key)
        claim = raw.decode() if isinstance(raw, bytes) else str(raw)
        assert claim.endswith("!")
        first = claim[:-1]
        await hub.redis.set(key, first + "?", keepttl=True)
        assert first not in await pending_ids(hub)

        # The retry: it marks the first try's id, then waits (up to 3 s) for that claim.
        retry = asyncio.create_task(intake.accept(hub, APP, [activity()], batch=False))
        assert await wait_for(lambda: _named(hub, first), timeout=3)
        assert not retry.done()
        # A sweep pass lands now; the worker runs what it queued while nothing is stored.
        await sweep_pending({"hub": hub}, min_age=0)
        assert await wait_for(lambda: queue_empty(hub, settings), timeout=2)
        await asyncio.sleep(0.2)  # the job's result is kept
        assert not retry.done()
        (answer,) = await retry
        assert answer["id"] == first  # 202 carrying the first try's id

        # Sweeps go on as the worker's cron would run them.
        async def everywhere() -> bool:
            await sweep_pending({"hub": hub}, min_age=0)
            feeds = [await hub.feeds.flat_ids(APP, f"timeline:{r}", 10) for r in readers]
            return all(first in f for f in feeds)

        assert await wait_for(everywhere, timeout=15), "the retried post never reached the followers' feeds"
        assert first not in await pending_ids(hub)  # its fan-out is certain: the marker went


async def test_a_planning_job_that_failed_for_good_is_run_again_by_the_sweep(hub: Hub, settings: Settings) -> None:
    """Intake queued the job and answered 202; the job then met Cassandra down until arq
    gave up on it. Its marker is still there, so the sweep runs it again."""
    from arq.worker import Worker

    from hub.queue import deserialize, serialize
    from workers.main import arq_pool, functions

    author, reader = uid("author"), uid("reader")
    await follow_ops.follow(hub, APP, reader, author, 0)
    await rebuild.ensure_built(hub, APP, hub.settings.feeds["timeline"], reader)
    act = ActivityInput(actor=author, verb="post", object="note:2", time=datetime.now(timezone.utc))
    (answer,) = await intake.accept(hub, APP, [act], batch=False)
    aid = answer["id"]
    await hub.redis.delete(hub.activities.keys(APP).activity(aid))  # the job must read Cassandra
    assert aid in await pending_ids(hub)

    once = dataclasses.replace(settings, worker=dataclasses.replace(settings.worker, max_tries=1))
    async with hub_through_cut_relay(once) as down:
        pool = arq_pool(once, HIGH)
        # A worker of the high queue (no cron), giving up after one try.
        worker = Worker(functions(once), queue_name=queue_name(once.redis, HIGH), redis_pool=pool,
                        ctx={"hub": down}, burst=True, handle_signals=False, max_tries=1, poll_delay=0.02,
                        keep_result=60, job_serializer=serialize, job_deserializer=deserialize)
        try:
            await worker.main()  # until the queue is empty: the job ran, was retried, then failed
        finally:
            await worker.close()
    assert worker.jobs_failed == 1 and worker.jobs_complete == 0
    assert await queue_empty(hub, settings)
    assert aid not in await hub.feeds.flat_ids(APP, f"timeline:{reader}", 10)
    assert aid in await pending_ids(hub)  # what intake used to delete when it queued the job

    assert await sweep_pending({"hub": hub}, min_age=0) == 1
    async with running_worker(settings):
        async def arrived() -> bool:
            return aid in await hub.feeds.flat_ids(APP, f"timeline:{reader}", 10)

        assert await wait_for(arrived, timeout=10)
        assert await wait_for(lambda: _gone(hub, aid), timeout=5)


async def test_the_sweep_leaves_young_markers_and_queued_jobs_alone(hub: Hub, settings: Settings) -> None:
    author = uid("author")
    act = ActivityInput(actor=author, verb="post", object="note:3", time=datetime.now(timezone.utc))
    # Stored with its marker; its job is queued (no worker runs here).
    (answer,) = await intake.accept(hub, APP, [act], batch=False)
    aid = answer["id"]
    assert await sweep_pending({"hub": hub}, min_age=20) == 0  # named less than 20 s ago
    assert await sweep_pending({"hub": hub}, min_age=0) == 0  # its job is still queued
    assert aid in await pending_ids(hub)


async def _gone(hub: Hub, activity_id: str) -> bool:
    return activity_id not in await pending_ids(hub)


async def _named(hub: Hub, activity_id: str) -> bool:
    return activity_id in await pending_ids(hub)
