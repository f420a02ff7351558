"""The job queues on a Redis of their own (``[queue] url``), as beside a Redis Cluster:
intake queues there, a worker takes the jobs from there, and the feeds stay on the main
Redis. Through a real Sentinel too (``redis+sentinel://``)."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from arq.constants import job_key_prefix

from hub.config import QueueSettings, Settings
from hub.domain.activity import ActivityInput
from hub.ops import follow as follow_ops
from hub.ops import intake
from hub.queue import FANOUT, HIGH, SWEEP, queue_name
from hub.services import start_redis
from hub.services.process import port_free
from hub.storage.binding import binding_key
from tests.conftest import uid
from tests.helpers import feed_ids, wait_for
from workers.context import close_hub, open_hub
from workers.main import arq_pool, build_worker, cron_name, run_workers

HOST = "127.0.0.1"
APP = "t1"
MASTER = "hubq"


def free_port(start_at: int) -> int:
    return next(p for p in range(start_at, start_at + 500) if port_free(HOST, p))


@pytest.fixture
def queue_port(tmp_path: Path) -> Iterator[int]:
    """A queue Redis of the test's own, started as ``hub services`` starts one."""
    service = start_redis(HOST, free_port(16480), tmp_path, lambda _: None, what="queue Redis")
    assert service is not None
    yield int(service.address.rsplit(":", 1)[1])
    service.stop()


@pytest.fixture
def sentinel_port(tmp_path: Path, queue_port: int) -> Iterator[int]:
    """A real Sentinel (``redis-server --sentinel``) that names the queue Redis as ``hubq``."""
    port = free_port(26480)
    conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its file: one of its own
    conf.write_text(f"port {port}\nbind {HOST}\nsentinel monitor {MASTER} {HOST} {queue_port} 1\n")
    with open(tmp_path / "sentinel.log", "wb") as log:
        proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(host=HOST, port=port, decode_responses=True) as s:
                    if s.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", MASTER):
                        break
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "sentinel.log").read_text()[-500:]
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("via", ["redis", "sentinel"])
async def test_intake_and_a_worker_with_the_queues_on_a_redis_of_their_own(
    settings: Settings, queue_port: int, request: pytest.FixtureRequest, via: str,
) -> None:
    if via == "sentinel":
        url = f"redis+sentinel://{HOST}:{request.getfixturevalue('sentinel_port')}/{MASTER}"
    else:
        url = f"redis://{HOST}:{queue_port}/0"
    # A key prefix of its own: the queue Redis of the other variant had the same port,
    # and a late write of that variant's stopped worker (arq finishes a job in a shielded
    # task) could land in this one's queue.
    s = dataclasses.replace(settings, queue=QueueSettings(url=url),
                            redis=dataclasses.replace(settings.redis, key_prefix=f"{settings.redis.key_prefix}:{uid('q')}"))
    assert s.queue_apart
    hub = await open_hub(s)
    try:
        # The keyspace binding guards the queues where they are.
        with redis.Redis(host=HOST, port=queue_port, decode_responses=True) as direct:
            assert direct.get(binding_key(s.redis.key_prefix)) == s.cassandra.keyspace
        alice, bob, carol = uid("alice"), uid("bob"), uid("carol")
        await follow_ops.follow(hub, APP, bob, alice, 0)
        assert await feed_ids(hub, APP, "timeline", bob) == []  # bob's timeline is cached
        now = datetime.now(timezone.utc)
        (posted,) = await intake.accept(hub, APP, [ActivityInput(actor=alice, verb="like", object="photo:1", time=now)],
                                        batch=False)
        aid = posted["id"]
        queue = queue_name(s.redis, HIGH)
        jobs = [j for j in await hub.queue.queued_jobs(queue_name=queue) if j.function == FANOUT and aid in j.args[1]]
        assert len(jobs) == 1  # on the queue Redis...
        job_key = f"arq:job:{jobs[0].job_id}"
        assert not await hub.redis.exists(job_key)  # ...not on the main one
        assert await feed_ids(hub, APP, "user", alice) == [aid]  # the own feed is written at intake

        # Carol's follower cache says she has none: checked on the main Redis, nothing queued.
        assert await hub.follows.followers(APP, carol) == []
        (alone,) = await intake.accept(hub, APP, [ActivityInput(actor=carol, verb="like", object="photo:2", time=now)],
                                       batch=False)
        assert not [j for j in await hub.queue.queued_jobs(queue_name=queue) if alone["id"] in j.args[1]]

        # A worker on the queue Redis takes the job; the feeds are on the main Redis.
        stop = asyncio.Event()
        worker = asyncio.create_task(run_workers(s, stop=stop))
        try:
            assert await wait_for(lambda: _has(hub, bob, aid), timeout=15)
            # The planning job ran to its end there (it may still be dropping its marker
            # when the chunk job's entry lands).
            assert await wait_for(lambda: _gone(hub.queue, job_key), timeout=15)
        finally:
            stop.set()
            await asyncio.wait_for(worker, 30)
    finally:
        await close_hub(hub)


async def _gone(queue: Any, key: str) -> bool:
    return not await queue.exists(key)


async def _has(hub: object, user: str, aid: str) -> bool:
    return aid in await feed_ids(hub, APP, "timeline", user)  # type: ignore[arg-type]


async def test_readyz_names_a_queue_redis_that_does_not_answer(settings: Settings, tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from web.app import create_app

    port = free_port(16580)
    s = dataclasses.replace(settings, queue=QueueSettings(url=f"redis://{HOST}:{port}/0"))
    async with TestClient(TestServer(create_app(s))) as client:
        r = await client.get("/readyz")
        assert r.status == 503
        assert (await r.json())["error"]["message"].startswith("queue not answering: queue: ")
        service = await asyncio.to_thread(start_redis, HOST, port, tmp_path, lambda _: None)
        assert service is not None
        try:
            assert await wait_for(lambda: _ready(client), timeout=10)
            assert await (await client.get("/readyz")).json() == {"status": "ready", "redis": "ok", "cassandra": "ok",
                                                                   "queue": "ok"}
        finally:
            await asyncio.to_thread(service.stop)


async def _ready(client: Any) -> bool:
    return bool((await client.get("/readyz")).status == 200)


async def test_two_hubs_on_one_queue_redis_each_queue_their_own_cron_ticks(settings: Settings) -> None:
    """arq's cron job ids (``<name>:<tick>``) are global on the queue Redis. Each hub's
    cron names carry its key prefix, so two hubs sharing the queue Redis both queue the
    sweep of the same tick; with one name, the second hub's was taken for a repeat."""
    hubs = [dataclasses.replace(settings, redis=dataclasses.replace(
        settings.redis, key_prefix=f"{settings.redis.key_prefix}:{uid('hub')}")) for _ in range(2)]
    tick = datetime.now(timezone.utc).replace(microsecond=0)
    pools = [arq_pool(s, HIGH) for s in hubs]
    try:
        for s, pool in zip(hubs, pools):
            await build_worker(s, HIGH, {}, pool).run_cron(tick, 0.5)  # the tick's jobs, as at a start
        for s, pool in zip(hubs, pools):
            queued = await pool.zrange(queue_name(s.redis, HIGH), 0, -1)
            assert [j.decode() for j in queued] == [f"{cron_name(s, SWEEP)}:{int(tick.timestamp() * 1000)}"]
    finally:
        for s, pool in zip(hubs, pools):
            await pool.delete(queue_name(s.redis, HIGH), job_key_prefix + f"{cron_name(s, SWEEP)}:{int(tick.timestamp() * 1000)}")
            await pool.aclose()
