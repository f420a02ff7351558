"""``hub bench intake``: activities accepted through the signed API.

(a) throughput: batches of 100 activities from several concurrent clients;
(b) latency: single-activity POSTs from 20 concurrent clients.
The ceiling, in the same run: the same server's ``/healthz`` at the same concurrency, and
Cassandra's rate for the foreign_id lightweight transaction against a plain insert.
The load generators (bench/intake_load.py) are wrk and this process's aiohttp client;
the server and the workers are subprocesses, so they do not share its CPU (they do share
the machine's 2 cores).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import time
from dataclasses import dataclass

from bench.common import Environment, environment, info
from bench.cpu import CpuMeter, format_cpu
from bench.intake_load import Load, drive, with_foreign_id, wrk_load
from hub.config import Settings
from hub.queue import PRIORITIES, connect_queue, queue_name

BATCH_CLIENTS = 4
LATENCY_CLIENTS = 20


@dataclass
class IntakeResult:
    batch: Load
    single: Load  # wrk
    single_py: Load  # this process's aiohttp client, for comparison
    health_batch: Load
    health_single: Load  # wrk
    lwt_rate: float
    insert_rate: float
    workers: int

    def report(self) -> str:
        b, s, hb, hs = self.batch, self.single, self.health_batch, self.health_single
        return "\n".join([
            f"intake: signed POST /v1/apps/{{app}}/activities, "
            f"{'a unique foreign_id per activity' if with_foreign_id() else 'NO foreign_id (HUB_BENCH_FOREIGN_ID=0)'}, "
            f"{self.workers} worker process(es) running",
            f"(a) throughput, batches of 100, {BATCH_CLIENTS} clients, {b.seconds:.1f} s: "
            f"{b.ips:,.0f} activities/s accepted ({b.rps:,.0f} requests/s, {b.lat()}){b.errs()}",
            f"    ceiling: GET /healthz at {BATCH_CLIENTS} clients: {hb.rps:,.0f} requests/s ({hb.lat()})",
            f"    target 1,000 activities/s: {'met' if b.ips >= 1000 else 'NOT met'}",
            f"    cpu: {format_cpu(b.cpu, b.seconds)}",
            f"(b) latency, single activity, {LATENCY_CLIENTS} connections of wrk (precomputed signed requests), "
            f"{s.seconds:.1f} s: {s.lat()} ({s.rps:,.0f} requests/s){s.errs()}",
            f"    ceiling: GET /healthz from wrk at {LATENCY_CLIENTS} connections: {hs.lat()} ({hs.rps:,.0f} requests/s)",
            f"    ratio: {s.rps / hs.rps:.2f} of the ceiling's request rate",
            f"    target p99 < 50 ms: {'met' if s.p(99) < 50 else 'NOT met'}",
            f"    cpu: {format_cpu(s.cpu, s.seconds)}",
            f"    the same from {LATENCY_CLIENTS} clients of this process's aiohttp client (signing as it goes): "
            f"{self.single_py.lat()} ({self.single_py.rps:,.0f} requests/s){self.single_py.errs()}",
            f"Cassandra from Python, 64 concurrent: foreign_id INSERT ... IF NOT EXISTS {self.lwt_rate:,.0f}/s, "
            f"plain INSERT {self.insert_rate:,.0f}/s (LWT costs {self.insert_rate / self.lwt_rate:.1f}x)",
        ])


async def cassandra_rates(settings: Settings, seconds: float) -> tuple[float, float]:
    """LWT insert vs plain insert into the foreign_ids table, 64 concurrent."""
    from hub.storage.cassandra import Cassandra

    db = await Cassandra.connect(settings.cassandra)
    run = secrets.token_hex(3)
    try:
        rates = []
        for lwt in (True, False):
            cql = "INSERT INTO {ks}.foreign_ids (app, foreign_id, id) VALUES (%s, %s, %s)"
            if lwt:
                cql += " IF NOT EXISTS"
            counter = itertools.count()
            done = 0
            start = time.perf_counter()
            end = start + seconds

            async def loop() -> None:
                nonlocal done
                while time.perf_counter() < end:
                    i = next(counter)
                    await db.execute(cql, ("cass-ceiling", f"{run}:{lwt}:{i}", f"id{i}"))
                    done += 1

            await asyncio.gather(*(loop() for _ in range(64)))
            rates.append(done / (time.perf_counter() - start))
        return rates[0], rates[1]
    finally:
        await db.close()


@dataclass
class LatencyRuns:
    """``HUB_BENCH_LATENCY_RUNS=n``: phase (b) alone, n times on one server, to see its spread."""

    runs: list[Load]
    health: Load

    def report(self) -> str:
        lines = [f"intake (b) only: single-activity POSTs, {LATENCY_CLIENTS} connections of wrk, "
                 f"{len(self.runs)} runs of {LATENCY_SECONDS:.0f} s after a warm-up"]
        for n, r in enumerate(self.runs, 1):
            lines.append(f"  run {n}: {r.lat()} ({r.rps:,.0f} requests/s){r.errs()}; cpu: {format_cpu(r.cpu, r.seconds)}")
        met = sum(r.p(99) < 50 for r in self.runs)
        lines.append(f"  ceiling: GET /healthz from wrk at {LATENCY_CLIENTS} connections: "
                     f"{self.health.lat()} ({self.health.rps:,.0f} requests/s)")
        lines.append(f"  target p99 < 50 ms: met in {met} of {len(self.runs)} runs")
        return "\n".join(lines)


LATENCY_SECONDS = 8.0


def latency_runs() -> int:
    return int(os.environ.get("HUB_BENCH_LATENCY_RUNS") or 0)


def _pids(env: Environment) -> dict[str, list[int]]:
    """The processes whose CPU the bench reports: server, workers, Redis, Cassandra."""
    from hub import services

    pids: dict[str, list[int]] = {"server": [p.pid for n, p in env.procs if n == "server"],
                                  "workers": env.worker_pids()}
    for st in services.status(env.settings):
        if st.pid:
            pids[st.name] = [st.pid]
    return pids


async def run_latency(settings: Settings, runs: int) -> LatencyRuns:
    async with environment(settings) as env:
        pids = _pids(env)
        info("warming up")
        await drive(env, "warm-up", 4, 2.0, batch=10)
        await wrk_load(env, "warm-up", LATENCY_CLIENTS, 3.0, post=True)
        health = await wrk_load(env, "healthz", LATENCY_CLIENTS, 3.0, post=False)
        loads = [await wrk_load(env, f"single activity, run {n + 1}", LATENCY_CLIENTS, LATENCY_SECONDS, post=True,
                                meter=CpuMeter(pids))
                 for n in range(runs)]
        return LatencyRuns(loads, health)


async def settle(env: Environment, timeout: float = 120.0) -> None:
    """Wait until the workers have run every job that is due, so that the next phase is
    not measured while the last one's fan-out still runs beside it."""
    redis = await connect_queue(env.settings)  # the queues' Redis ([queue] url)
    queues = [queue_name(env.settings.redis, p) for p in PRIORITIES]
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < timeout:
            now_ms = int(time.time() * 1000)
            due = sum([await redis.zcount(q, "-inf", now_ms) for q in queues])
            if not due:
                info(f"settled: the fan-out queues are empty after {time.perf_counter() - start:.1f} s")
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the fan-out queues did not empty in {timeout:.0f} s")
    finally:
        await redis.aclose()


async def run_intake(settings: Settings, *, quick: bool) -> IntakeResult:
    seconds = 1.0 if quick else 5.0
    async with environment(settings) as env:
        pids = _pids(env)
        info("warming up")
        await drive(env, "warm-up", 4, 0.5 if quick else 2.0, batch=10)
        health_batch = await drive(env, "healthz (4 clients)", BATCH_CLIENTS, seconds, batch=None)
        batch = await drive(env, "batches of 100", BATCH_CLIENTS, seconds, batch=100, meter=CpuMeter(pids))
        # (b) in the steady state it names: after (a)'s fan-out, and after a warm-up of the
        # same POSTs at 20 clients (until session 16 the warm-up sent GET /healthz).
        await settle(env)
        await wrk_load(env, "warm-up", LATENCY_CLIENTS, 1.0 if quick else 3.0, post=True)
        health_single = await wrk_load(env, "healthz", LATENCY_CLIENTS, seconds, post=False)
        single = await wrk_load(env, "single activity", LATENCY_CLIENTS, 1.0 if quick else LATENCY_SECONDS,
                                post=True, meter=CpuMeter(pids))
        single_py = await drive(env, "single activity (aiohttp)", LATENCY_CLIENTS, seconds, batch=1)
        info("measuring Cassandra: LWT vs plain insert")
        lwt, plain = await cassandra_rates(env.settings, 1.0 if quick else 3.0)
        return IntakeResult(batch, single, single_py, health_batch, health_single, lwt, plain, env.worker_processes)
