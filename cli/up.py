"""``hub up``: from a fresh machine to a running hub.

Starts local Redis and Cassandra unless the configured ones answer, applies the schema,
then runs ``hub serve`` and ``hub worker`` as child processes. Ctrl-C stops the children
and the services this command started, and nothing else.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request

from hub import services
from hub.config import Settings
from hub.storage.schema import migrate


def up(settings: Settings, *, config: str | None = None) -> int:
    t0 = time.monotonic()
    try:
        started = services.start(settings, progress=print)
    except services.ServiceError as e:
        print(f"hub: {e}", file=sys.stderr)
        return 1
    children: list[subprocess.Popen[bytes]] = []
    try:
        applied = asyncio.run(migrate(settings.cassandra, progress=print))
        print(f"schema ready ({'applied ' + str(applied) if applied else 'up to date'})")
        base = [sys.executable, "-m", "cli.main"] + (["--config", config] if config else [])
        children.append(subprocess.Popen([*base, "serve"]))
        children.append(subprocess.Popen([*base, "worker"]))
        url = f"http://{settings.server.host}:{settings.server.port}"
        if not _wait_ready(url + "/readyz", children, timeout=60):
            print("hub: the server did not become ready; see the messages above", file=sys.stderr)
            return 1
        print(f"\nhub is ready in {time.monotonic() - t0:.1f} s at {url}")
        _print_demo(settings, url)
        print("Ctrl-C stops everything hub up started.")
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        print("hub: a child process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        _stop_children(children)
        for svc in reversed(started):
            svc.stop()
            print(f"stopped {svc.name}")


def _wait_ready(url: str, children: list[subprocess.Popen[bytes]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.poll() is not None for c in children):
            return False
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
