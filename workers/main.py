"""Build and run arq workers from the hub's settings.

``hub worker`` runs one worker per queue (high and low priority) in one process, sharing
one set of clients. ``--queue`` limits it to one, for deployments that scale them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

from arq.cron import cron
from arq.worker import Function, Worker, func

from hub.config import Settings
from hub.queue import (
    FANOUT,
    FANOUT_CHUNK,
    HIGH,
    PRIORITIES,
    REMOVE,
    SWEEP,
    arq_redis_settings,
    deserialize,
    queue_name,
    serialize,
)
from workers.context import close_hub, open_hub
from workers.jobs import fanout, maintenance

log = logging.getLogger(__name__)


def functions(settings: Settings) -> list[Function]:
    w = settings.worker
    # Every job is idempotent, so a retry after a crash or a dependency outage is safe;
    # a short timeout is what makes arq re-run a job whose worker was killed within seconds.
    def job(coroutine: Any, name: str) -> Function:
        return func(coroutine, name=name, timeout=w.job_timeout, max_tries=w.max_tries)

    return [
        job(maintenance.ping, "ping"),
        job(fanout.plan_fanout, FANOUT),
        job(fanout.fanout_chunk, FANOUT_CHUNK),
        job(fanout.remove_activity, REMOVE),
        job(fanout.sweep_pending, SWEEP),
    ]


def build_worker(settings: Settings, priority: str, ctx: dict[str, Any], *, burst: bool = False) -> Worker:
    return Worker(
        functions(settings),
        queue_name=queue_name(settings.redis, priority),
        # The sweep re-queues stored activities whose fan-out was never queued (at start
        # and every 30 s); one queue runs it, arq's unique cron ids keep it once per tick.
        cron_jobs=[cron(fanout.sweep_pending, name=SWEEP, second={0, 30}, run_at_startup=True)]
        if priority == HIGH else None,
        # Each worker owns its pool: Worker.close() closes it.
        redis_settings=arq_redis_settings(settings.redis),
        ctx=ctx,
        burst=burst,
        handle_signals=False,
        max_jobs=settings.worker.max_jobs,
        job_timeout=settings.worker.job_timeout,
        max_tries=settings.worker.max_tries,
        poll_delay=settings.worker.poll_delay,
        keep_result=60,
        job_serializer=serialize,
        job_deserializer=deserialize,
        log_results=False,
    )


async def run_workers(
    settings: Settings, queues: Sequence[str] = PRIORITIES, *, burst: bool = False, stop: asyncio.Event | None = None
) -> None:
    """Run until SIGINT/SIGTERM, until ``stop`` is set, or (``burst``) until the queues are empty."""
    hub = await open_hub(settings)
    ctx: dict[str, Any] = {"hub": hub}
    workers = [build_worker(settings, q, ctx, burst=burst) for q in queues]
    if stop is None:
        stop = asyncio.Event()
        if not burst:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(w.async_run()) for w in workers]
    waiter = asyncio.create_task(stop.wait())
    try:
        if burst:
            await asyncio.gather(*tasks)
        else:
            await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        for w in workers:
            # close() cancels the jobs still running (they are idempotent and will be
            # re-run) and then gathers them, which re-raises their cancellation.
            with contextlib.suppress(asyncio.CancelledError):
                await w.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_hub(hub)
