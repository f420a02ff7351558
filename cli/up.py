"""``hub up``: from a fresh machine to a running hub.

Starts local Redis and Cassandra unless the configured ones answer, applies the schema,
then runs ``hub serve`` and ``hub worker`` as child processes and supervises them: a child
that exits is started again after 1 s, then 2, 4, ... up to 30 s while it keeps crashing
(back to 1 s once it has run for a minute). Ctrl-C (or SIGTERM) stops the children and
the services this command started, and nothing else.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from types import FrameType

from cli.progress import status_lines
from hub import services
from hub.config import Settings
from hub.queue import connect_queue
from hub.storage import redis as redis_storage
from hub.storage.binding import bind_keyspace
from hub.storage.schema import migrate
from workers.resilience import Backoff


@dataclass
class Child:
    """One supervised child process."""

    name: str
    argv: list[str]
    backoff: Backoff = field(default_factory=lambda: Backoff(first=1.0, cap=30.0, reset_after=60.0))
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv)
        self.started = time.monotonic()
        self.restart_at = None

    def tend(self) -> None:
        """Notice an exit and schedule the restart; restart when its time has come."""
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                print(f"hub: starting {self.name} again", file=sys.stderr, flush=True)
                self.start()
            return
        code = self.proc.poll() if self.proc is not None else None
        if code is None:
            return
        ran = now - self.started
        delay = self.backoff.delay(ran_for=ran)
        print(f"hub: {self.name} exited (code {code}) after {ran:.0f} s; restarting it in {delay:.0f} s",
              file=sys.stderr, flush=True)
        self.restart_at = now + delay


def children_of(config: str | None, worker_metrics_port: int | None = None) -> list[Child]:
    """``hub serve`` and ``hub worker`` as ``hub up`` runs them: the same configuration
    file, and the worker's Prometheus metrics on ``worker_metrics_port`` if given (the
    server serves its own at ``GET /metrics``)."""
    base = [sys.executable, "-m", "cli.main"] + (["--config", config] if config else [])
    metrics = ["--metrics-port", str(worker_metrics_port)] if worker_metrics_port else []
    return [Child("hub serve", [*base, "serve"]), Child("hub worker", [*base, "worker", *metrics])]


def up(settings: Settings, *, config: str | None = None, worker_metrics_port: int | None = None) -> int:
    t0 = time.monotonic()
    try:
        with status_lines("starting services") as progress:
            started = services.start(settings, progress=progress)
    except services.ServiceError as e:
        print(f"hub: {e}", file=sys.stderr)
        return 1
    children: list[Child] = []
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with status_lines("migrating the schema") as progress:
            applied = asyncio.run(migrate(settings.cassandra, progress=progress))
        print(f"schema ready ({'applied ' + str(applied) if applied else 'up to date'})")
        # Before any child starts: a conflict is one line and exit 2, not a crash loop.
        asyncio.run(_bind(settings))
        children = children_of(config, worker_metrics_port)
        for c in children:
            c.start()
        url = f"http://{settings.server.host}:{settings.server.port}"
        if not _wait_ready(url + "/readyz", children, timeout=60):
            print("hub: the server did not become ready; see the messages above", file=sys.stderr)
            return 1
        print(f"\nhub is ready in {time.monotonic() - t0:.1f} s at {url}")
        if worker_metrics_port:
            print(f"worker metrics at http://{settings.server.host}:{worker_metrics_port}/metrics")
        _print_demo(settings, url)
        print("Ctrl-C stops everything hub up started.", flush=True)
        while True:
            for c in children:
                c.tend()
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_children([c.proc for c in children if c.proc is not None])
        for svc in reversed(started):
            svc.stop()
            print(f"stopped {svc.name}")


async def _bind(settings: Settings) -> None:
    """The keyspace guard (hub/storage/binding.py), checked once before the children start."""
    r = redis_storage.connect(settings.redis)
    queue = await connect_queue(settings)
    try:
        await bind_keyspace(r, settings, queue)
    finally:
        await queue.aclose()
        await r.aclose()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops everything, as Ctrl-C does


def _wait_ready(url: str, children: list[Child], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in children:
            c.tend()
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def _print_demo(settings: Settings, url: str) -> None:
    from hub.domain.tokens import issue_token

    if "demo" not in settings.apps:
        return
    app = settings.apps["demo"]
    token = issue_token(app.id, app.key, "bob", 86400, now=int(time.time()))
    print(f"demo token (app demo, user bob, 24 h):\n  {token}")
    print(f"bob's live inbox: {url}/demo?token={token}", flush=True)


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for c in children:
        if c.poll() is None:
            c.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10
    for c in children:
        try:
            c.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.kill()
            c.wait()
