"""A worker (run_workers, in this process) outlives its dependencies: it waits for them at
start and serves its queues again after Redis is killed and restarted.

The Redis killed here is one of the test's own (never the shared 6379)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from arq import Retry
from arq.connections import ArqRedis
from arq.constants import retry_key_prefix

from hub.config import Settings
from hub.core import Hub
from hub.errors import Unavailable
from hub.services.redis_local import start_redis
from tests.conftest import uid
from tests.faulthub import Running, free_port, with_redis
from workers.jobs.fanout import retry_when_down
from workers.main import arq_pool, run_workers

RESILIENCE_LOG = "workers.resilience"


async def ping(pool: ArqRedis, settings: Settings, timeout: float) -> str:
    job = await pool.enqueue_job("ping", "outage", _queue_name=f"{settings.redis.key_prefix}:queue:high")
    assert job is not None
    result = await asyncio.wait_for(job.result(poll_delay=0.05), timeout)
    return str(result["pong"])


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == RESILIENCE_LOG]


async def test_a_worker_started_while_cassandra_is_down_waits_for_it(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, RESILIENCE_LOG)
    # Nothing listens on this loopback address: every connection is refused.
    nowhere = dataclasses.replace(settings, cassandra=dataclasses.replace(settings.cassandra, hosts=("127.0.0.9",)))
    stop = asyncio.Event()
    task = asyncio.create_task(run_workers(nowhere, stop=stop))
    await asyncio.sleep(4)
    assert not task.done(), task
    stop.set()
    await asyncio.wait_for(task, 15)  # and stops when asked, without an error
    lines = outage_lines(caplog)
    assert len(lines) == 1 and "Cassandra at 127.0.0.9:9042 is unavailable" in lines[0], lines


async def test_a_worker_serves_its_queue_again_after_redis_is_killed_and_restarted(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, RESILIENCE_LOG)
    state = Path(tempfile.mkdtemp(prefix="hub-worker-outage-"))
    port = free_port()
    running = Running()

    def start() -> None:
        running.add(start_redis("127.0.0.1", port, state, lambda _m: None))

    own = with_redis(settings, port)
    client = arq_pool(own, "high")
    stop = asyncio.Event()
    try:
        start()
        task = asyncio.create_task(run_workers(own, stop=stop))
        try:
            assert await ping(client, own, 30) == "outage"
            for _ in range(2):  # two outages: one line each when it starts and when it ends
                running.kill_9()
                await asyncio.sleep(2)
                assert not task.done(), task
                await asyncio.to_thread(start)
                assert await ping(client, own, 30) == "outage"  # an empty Redis: a new queue, served
            assert not task.done()
            lines = outage_lines(caplog)
            assert len(lines) == 4 and all("Redis at" in line for line in lines), lines
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    finally:
        await client.aclose(close_connection_pool=True)
        running.stop_all()
        shutil.rmtree(state, ignore_errors=True)


async def test_a_job_meeting_an_outage_on_its_last_tries_gets_them_back(hub: Hub, settings: Settings) -> None:
    """arq fails a job after worker.max_tries runs; through an outage of up to an hour
    (after the job was queued), retry_when_down gives the tries back."""

    @retry_when_down
    async def down(ctx: dict[str, Any]) -> None:
        raise Unavailable("Cassandra: NoHostAvailable")

    @retry_when_down
    async def bug(ctx: dict[str, Any]) -> None:
        raise ValueError("not an outage")

    last = settings.worker.max_tries - 1
    job_id = uid("job")
    key = retry_key_prefix + job_id
    now = datetime.now(timezone.utc)
    ctx: dict[str, Any] = {"hub": hub, "job_id": job_id, "job_try": last, "enqueue_time": now}
    try:
        await hub.queue.set(key, last, ex=60)
        with pytest.raises(Retry) as retry:
            await down(ctx)
        assert retry.value.defer_score == 30_000
        assert int(await hub.queue.get(key)) == 1  # the next run is try 2

        await hub.queue.set(key, last, ex=60)
        with pytest.raises(Retry):
            await down({**ctx, "enqueue_time": now - timedelta(hours=2)})
        assert int(await hub.queue.get(key)) == last  # queued too long ago: not given back

        with pytest.raises(ValueError):
            await bug(ctx)
        assert int(await hub.queue.get(key)) == last
    finally:
        await hub.queue.delete(key)
