"""What every benchmark scenario shares.

A scenario runs against its own Cassandra keyspace and Redis key prefix (derived from the
loaded settings), with the real server and workers as subprocesses started from a
temporary config file, and removes its data at the end. Figures are printed to stdout,
progress to stderr.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from hub.config import AppSettings, FeedGroup, Settings
from hub.domain.signing import sign as sign_body
from hub.storage import redis as redis_storage
from hub.storage.cassandra import Cassandra

ROOT = Path(__file__).resolve().parent.parent

# Bench knobs that the `hub bench` command line does not carry (it is not ours to extend):
# HUB_BENCH_WORKERS (worker processes, default 2: one per core), HUB_BENCH_CHUNK (fanout.chunk_size).
WORKERS_ENV = "HUB_BENCH_WORKERS"
CHUNK_ENV = "HUB_BENCH_CHUNK"


def info(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Progress:
    """A progress bar on stderr, drawn by rich.

    On a terminal it is redrawn in place; when stderr is not a terminal (a pipe, a test
    capturing it) rich draws nothing while it runs and prints the final bar once at
    ``close()``, so logs get one readable line per bar.
    """

    def __init__(self, label: str, total: int, unit: str = "") -> None:
        self.label, self.total, self.unit = label, max(1, total), unit
        self._bar = RichProgress(
            TextColumn("{task.description:<22}"), BarColumn(bar_width=30), MofNCompleteColumn(),
            TextColumn(unit), TimeElapsedColumn(),
            console=Console(stderr=True, highlight=False), refresh_per_second=10,
        )
        self._task = self._bar.add_task(escape(label), total=self.total)
        self._bar.start()

    def update(self, done: int) -> None:
        self._bar.update(self._task, completed=done)

    def close(self) -> None:
        self._bar.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_settings(settings: Settings, run_id: str, *, worker_processes: int) -> Settings:
    """The loaded settings, with this run's keyspace, key prefix and one bench app.

    The bench app's rate limit is raised so the limiter never interferes.
    """
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    app = AppSettings(id=f"bench-{run_id}", secret=secret, rate=1_000_000.0, burst=1_000_000)
    fanout = settings.fanout
    if os.environ.get(CHUNK_ENV):
        fanout = dataclasses.replace(fanout, chunk_size=int(os.environ[CHUNK_ENV]))
    return dataclasses.replace(
        settings,
        server=dataclasses.replace(settings.server, host="127.0.0.1", port=free_port()),
        redis=dataclasses.replace(settings.redis, key_prefix=f"bench:{run_id}"),
        cassandra=dataclasses.replace(settings.cassandra, keyspace=f"bench_{run_id}"),
        fanout=fanout,
        apps={app.id: app},
    )


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(str(v))


def config_toml(s: Settings) -> str:
    """A config file that loads back into ``s`` (what the subprocesses read)."""
    c = s.cassandra
    lines = [
        "[server]", f"host = {_toml(s.server.host)}", f"port = {s.server.port}",
        "[redis]", f"url = {_toml(s.redis.url)}", f"key_prefix = {_toml(s.redis.key_prefix)}",
        f"cluster = {_toml(s.redis.cluster)}", *([f"nodes = {_toml(s.redis.nodes)}"] if s.redis.nodes else []),
        *(["[queue]", f"url = {_toml(s.queue.url)}"] if s.queue.url else []),
        "[cassandra]", f"hosts = {_toml(c.hosts)}", f"port = {c.port}", f"keyspace = {_toml(c.keyspace)}",
        f"replication_factor = {c.replication_factor}", f"request_timeout = {c.request_timeout!r}",
    ]
    if c.protocol_version is not None:
        lines.append(f"protocol_version = {c.protocol_version}")
    f, w = s.fanout, s.worker
    lines += [
        "[fanout]", f"chunk_size = {f.chunk_size}", f"celebrity_threshold = {f.celebrity_threshold}",
        f"active_days = {f.active_days}",
        "[worker]", f"job_timeout = {w.job_timeout}", f"max_tries = {w.max_tries}", f"max_jobs = {w.max_jobs}",
        f"poll_delay = {w.poll_delay!r}",
        "[services]", f"state_dir = {_toml(str(s.services.state_dir))}", f"cache_dir = {_toml(str(s.services.cache_dir))}",
        f"cassandra_heap_mb = {s.services.cassandra_heap_mb}",
    ]
    for a in s.apps.values():
        lines += [f"[apps.{a.id}]", f"secret = {_toml(a.secret)}", f"allowed_origins = {_toml(a.allowed_origins)}",
                  f"rate = {a.rate!r}", f"burst = {a.burst}"]
    for g in s.feeds.values():
        lines += [f"[feeds.{g.name}]", f"kind = {_toml(g.kind)}", f"max_length = {g.max_length}",
                  f"ranking = {_toml(g.ranking)}"]
        if g.follows:
            lines.append(f"follows = {_toml(g.follows)}")
        if g.aggregate:
            lines.append(f"aggregate = {_toml(g.aggregate)}")
    return "\n".join(lines) + "\n"


def signed_headers(app: AppSettings, body: bytes) -> dict[str, str]:
    msg_id = "msg_" + secrets.token_hex(12)
    ts = int(time.time())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": sign_body(app.key, msg_id, ts, body), "content-type": "application/json"}


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[min(998, max(0, int(p * 10) - 1))]


class Environment:
    """Services, schema, temp config and the server/worker subprocesses of one run."""

    def __init__(self, settings: Settings, *, worker_processes: int) -> None:
        self.settings = settings
        self.app = next(iter(settings.apps.values()))
        self.worker_processes = worker_processes
        self.tmp = Path(tempfile.mkdtemp(prefix="hub-bench-"))
        self.config = self.tmp / "config.toml"
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.started_services: list[Any] = []
        self.url = f"http://127.0.0.1:{settings.server.port}"

    # -- set-up -----------------------------------------------------------------------
    async def start(self, *, server: bool = True, workers: bool = True) -> None:
        from hub import services
        from hub.storage.schema import migrate

        self.started_services = await asyncio.to_thread(services.start, self.settings, info)
        info(f"migrating keyspace {self.settings.cassandra.keyspace}")
        await migrate(self.settings.cassandra)
        self.config.write_text(config_toml(self.settings))
        if server:
            self.spawn("server", ["serve"])
            await self.wait_ready()
        if workers:
            for n in range(self.worker_processes):
                self.spawn(f"worker{n}", ["worker"])

    def spawn(self, name: str, argv: list[str], *, config: Path | None = None) -> None:
        """Start ``hub <argv>`` on this run's config (or ``config``); stopped by ``stop``."""
        # HUB_* variables would override the temp config (keyspace, port): leave them out.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "--config", str(config or self.config), *argv],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.procs.append((name, p))

    async def wait_ready(self, url: str | None = None, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                for name, p in self.procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.log_tail(name)}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with s.get((url or self.url) + "/readyz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"the server did not become ready in {timeout:.0f}s:\n{self.log_tail('server')}")

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.tmp / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def check_alive(self) -> None:
        for name, p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.log_tail(name)}")

    def worker_pids(self) -> list[int]:
        return [p.pid for name, p in self.procs if name.startswith("worker")]

    # -- tear-down --------------------------------------------------------------------
    async def stop(self) -> None:
        for _, p in self.procs:
            if p.poll() is None:
                p.terminate()
        for name, p in self.procs:
            try:
                await asyncio.to_thread(p.wait, 15)
            except subprocess.TimeoutExpired:
                info(f"{name} did not stop on SIGTERM: killing pid {p.pid}")
                p.kill()
                await asyncio.to_thread(p.wait)
        self.procs.clear()
        await self.drop_data()
        for svc in reversed(self.started_services):
            svc.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)  # the config and the processes' logs

    async def drop_data(self) -> None:
        s = self.settings
        with contextlib.suppress(Exception):
            db = await Cassandra.connect(s.cassandra)
            try:
                await db.execute(f"DROP KEYSPACE IF EXISTS {s.cassandra.keyspace}")
            finally:
                await db.close()
        r = redis_storage.connect(s.redis)
        try:
            # The hub's own keys, and arq's job/result keys whose ids name the bench app.
            for pattern in (f"{s.redis.key_prefix}:*", f"arq:*{self.app.id}*"):
                batch: list[str] = []
                async for k in r.scan_iter(match=pattern, count=5000):
                    batch.append(k)
                    if len(batch) >= 1000:
                        await r.unlink(*batch)
                        batch.clear()
                if batch:
                    await r.unlink(*batch)
        finally:
            await r.aclose()


@contextlib.asynccontextmanager
async def environment(settings: Settings, *, server: bool = True, workers: bool = True) -> AsyncIterator[Environment]:
    env = Environment(settings, worker_processes=worker_count())
    try:
        await env.start(server=server, workers=workers)
        yield env
    finally:
        await env.stop()


def worker_count() -> int:
    return int(os.environ.get(WORKERS_ENV) or 2)


def feed_group(settings: Settings, name: str) -> FeedGroup:
    return settings.feeds[name]


def run(coro: Any) -> Any:
    import uvloop

    return uvloop.run(coro)


async def gather_limited(n: int, coros: Any, label: str, total: int | None = None) -> None:
    """Await ``coros`` with at most ``n`` in flight, showing a progress bar."""
    coros = list(coros)
    sem = asyncio.Semaphore(n)
    bar = Progress(label, len(coros) if total is None else total)
    done = 0

    async def one(c: Any) -> None:
        nonlocal done
        async with sem:
            await c
        done += 1
        bar.update(done)

    await asyncio.gather(*(one(c) for c in coros))
    bar.close()
