"""Build and run arq workers from the hub's settings.

``hub worker`` runs one worker per queue (high and low priority) in one process, sharing
one set of clients. ``--queue`` limits it to one, for deployments that scale them apart.

A worker outlives its dependencies. Started while Cassandra is down, it waits for it.
arq's poll loop ends at the first Redis command that fails (a reset connection, a
restart), so each queue runs in a loop of its own here: when arq's worker ends, it is
closed, Redis is waited for, and a new worker is built on a new connection pool, with
backoff between attempts. Jobs that were running are cancelled and run again (every job
is idempotent). A Cassandra outage does not stop the poll loop at all: the jobs that meet
it are retried (workers/jobs/fanout.py ``retry_when_down``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from arq import Retry
from arq.connections import ArqRedis
from arq.cron import cron
from arq.worker import Function, Worker, func

from hub.config import Settings
from hub.metrics import HubMetrics
from hub.queue import (
    FAILOVER,
    FANOUT,
    FANOUT_CHUNK,
    HIGH,
    PRIORITIES,
    REMOVE,
    SWEEP,
    deserialize,
    queue_name,
    queue_pool,
    serialize,
)
from hub.storage.outage import OutageLog
from workers.context import close_hub, hub_of, wait_for_hub
from workers.jobs import fanout, maintenance
from workers.metricsserver import serve_metrics
from workers.resilience import Backoff, is_dependency_error, outage_log, sleep_unless, wait_until

log = logging.getLogger(__name__)


def functions(settings: Settings) -> list[Function]:
    w = settings.worker
    # Every job is idempotent, so a retry after a crash or a dependency outage is safe;
    # a short timeout is what makes arq re-run a job whose worker was killed within seconds.
    def job(coroutine: Any, name: str) -> Function:
        return func(measured(coroutine, name), name=name, timeout=w.job_timeout, max_tries=w.max_tries)

    return [
        job(maintenance.ping, "ping"),
        job(fanout.plan_fanout, FANOUT),
        job(fanout.fanout_chunk, FANOUT_CHUNK),
        job(fanout.remove_activity, REMOVE),
        job(fanout.sweep_pending, SWEEP),
        job(maintenance.redis_failover, FAILOVER),
    ]


def measured(coroutine: Callable[..., Awaitable[Any]], name: str) -> Any:
    """``coroutine`` counted in ``hub_jobs_total{job,outcome}`` and timed in
    ``hub_job_seconds{job}``. Outcomes: ``ok``; ``retry`` (arq's Retry: a dependency
    outage or a slow run, run again later); ``cancelled`` (arq's timeout, or a worker
    stopping: run again); ``error`` (a bug: arq retries up to max_tries)."""

    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        metrics = hub_of(ctx).metrics
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await coroutine(ctx, *args, **kwargs)
            outcome = "ok"
            return result
        except Retry:
            outcome = "retry"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            metrics.jobs.labels(name, outcome).inc()
            metrics.job_seconds.labels(name).observe(time.perf_counter() - started)

    return run


def arq_pool(settings: Settings, priority: str) -> ArqRedis:
    """A worker's own pool on the queue Redis (``[queue] url``). It connects on first use,
    and its timeouts bound how long a hung (not refusing) Redis can hold the poll loop."""
    return ArqRedis(queue_pool(settings), job_serializer=serialize, job_deserializer=deserialize,
                    default_queue_name=queue_name(settings.redis, priority))


def cron_name(settings: Settings, job: str) -> str:
    return f"{settings.redis.key_prefix}:{job}"


def build_worker(settings: Settings, priority: str, ctx: dict[str, Any], pool: ArqRedis, *, burst: bool = False) -> Worker:
    return Worker(
        functions(settings),
        queue_name=queue_name(settings.redis, priority),
        # The sweep re-queues stored activities whose fan-out was never queued (at start
        # and every 30 s); one queue runs it, arq's unique cron ids keep it once per tick.
        # arq's cron jobs default to one try: without max_tries, a sweep that met an outage
        # (and asked to be retried) was failed at its next run. Names carry the key prefix:
        # arq's job ids (``<name>:<tick>``) are global on the queue Redis, and another hub
        # sharing it would otherwise take this hub's ticks for its own repeats.
        cron_jobs=[cron(measured(fanout.sweep_pending, SWEEP), name=cron_name(settings, SWEEP), second={0, 30},
                        run_at_startup=True, max_tries=settings.worker.max_tries),
                   # A Redis Cluster failover may lose the last writes: every 5 s, the
                   # slots whose primary changed are flushed (hub/storage/failover.py).
                   *([cron(measured(maintenance.redis_failover, FAILOVER), name=cron_name(settings, FAILOVER),
                           second=set(range(0, 60, 5)), run_at_startup=True, max_tries=1)]
                     if settings.redis.cluster else [])]
        if priority == HIGH else None,
        redis_pool=pool,
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
    settings: Settings, queues: Sequence[str] = PRIORITIES, *, burst: bool = False, stop: asyncio.Event | None = None,
    metrics: HubMetrics | None = None, metrics_port: int | None = None,
) -> None:
    """Run until SIGINT/SIGTERM, until ``stop`` is set, or (``burst``) until the queues are
    empty. No dependency outage ends it. ``metrics``: the registry the jobs observe into
    (a new one if None); ``metrics_port``: serve it at ``GET /metrics`` on that port."""
    metrics = metrics or HubMetrics()
    async with contextlib.AsyncExitStack() as stack:
        if metrics_port is not None:
            await stack.enter_async_context(serve_metrics(settings, metrics, metrics_port))
        await _run_workers(settings, queues, burst=burst, stop=stop, metrics=metrics)


async def _run_workers(settings: Settings, queues: Sequence[str], *, burst: bool, stop: asyncio.Event | None,
                       metrics: HubMetrics) -> None:
    if stop is None:
        stop = asyncio.Event()
        if not burst:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
    hub = await wait_for_hub(settings, stop, metrics=metrics)
    if hub is None:
        return
    ctx: dict[str, Any] = {"hub": hub}
    try:
        if burst:
            workers = [build_worker(settings, q, ctx, arq_pool(settings, q), burst=True) for q in queues]
            runs = [asyncio.create_task(w.async_run()) for w in workers]
            try:
                await asyncio.gather(*runs)
            finally:
                for w, run in zip(workers, runs):
                    await _dispose(w, run)
        else:
            redis = outage_log(f"Redis at {settings.queue_url}")
            await asyncio.gather(*(_keep_running(settings, q, ctx, stop, redis) for q in queues))
    finally:
        await close_hub(hub)


async def _keep_running(settings: Settings, priority: str, ctx: dict[str, Any], stop: asyncio.Event,
                        redis: OutageLog) -> None:
    """One queue's arq worker, rebuilt whenever it ends, until ``stop`` is set."""
    loop = asyncio.get_running_loop()
    backoff = Backoff(first=1.0, cap=30.0, reset_after=60.0)
    while not stop.is_set():
        pool = arq_pool(settings, priority)
        if not await wait_until(pool.ping, redis, stop):
            await pool.aclose(close_connection_pool=True)
            return
        worker = build_worker(settings, priority, ctx, pool)
        started = loop.time()
        run = asyncio.create_task(worker.async_run())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([run, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            await _dispose(worker, run)
        if stop.is_set():
            return
        error = None if run.cancelled() else run.exception()
        if error is not None and is_dependency_error(error):
            redis.failed(error)
        else:
            # A bug, not an outage: say so loudly, and still keep the queue served.
            log.error("queue %s: the worker ended (%r); starting a new one", priority, error, exc_info=error)
        await sleep_unless(stop, backoff.delay(ran_for=loop.time() - started))


async def _dispose(worker: Worker, run: asyncio.Task[None]) -> None:
    """Stop a worker and close its pool, whatever state Redis is in.

    Running jobs are cancelled: arq then clears their in-progress marker (if Redis
    answers) so that they run again at once, else they run again when it expires.
    """
    # job_tasks: each job's own task, inside its run_job task; its error (a Retry, say)
    # is retrieved below, or asyncio logs "Task exception was never retrieved" at exit.
    everything = {run, *worker.tasks.values(), *worker.job_tasks.values()}
    if worker.main_task is not None:
        everything.add(worker.main_task)
    tasks = set(everything)
    # One cancellation is not always enough: arq's poll loop was seen polling on after
    # one (swallowed somewhere below it), which hung the stop. Cancel until all have ended.
    for _ in range(10):
        for t in tasks:
            t.cancel()
        _, tasks = await asyncio.wait(tasks, timeout=1.0)
        if not tasks:
            break
    else:
        log.error("queue %s: %d tasks of a stopped worker did not end", worker.queue_name, len(tasks))
    for t in everything - tasks:  # their errors are the outage the caller already knows of
        if not t.cancelled():
            t.exception()
    with contextlib.suppress(Exception):
        await worker.pool.delete(worker.health_check_key)
    with contextlib.suppress(Exception):
        await worker.pool.aclose(close_connection_pool=True)
