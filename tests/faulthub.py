"""A hub of its own, for fault tests: its config file, its ``hub serve`` and ``hub worker``
processes, and an app's client that posts and reads over HTTP as a real app would.

The fault tests kill a Redis or a Cassandra of their own (never the shared ones on
6379/9042); the processes here are pointed at those through the config file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from hub.config import AppSettings, Settings
from hub.services.process import ManagedService
from tests.conftest import ROOT, sign

APP = "t1"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_loopback(port: int) -> str:
    """A loopback address (127.0.0.5 to 127.0.0.254, picked at random, so concurrent runs
    rarely meet) where nothing listens on ``port`` nor on Cassandra's storage port for it."""
    from hub.services.cassandra_local import storage_ports
    from hub.services.process import port_free

    candidates = [f"127.0.0.{n}" for n in range(5, 255)]
    secrets.SystemRandom().shuffle(candidates)
    for host in candidates:
        if port_free(host, port) and all(port_free(host, p) for p in storage_ports(port)):
            return host
    raise AssertionError("no free loopback address")


def write_config(settings: Settings, port: int, path: Path) -> None:
    """config.toml with this hub's server port, Redis, Cassandra, worker and app."""
    hosts = "[" + ", ".join(f'"{h}"' for h in settings.cassandra.hosts) + "]"
    subs = {
        r"(?m)^port = 8080$": f"port = {port}",
        r'(?m)^url = "redis://.*"$': f'url = "{settings.redis.url}"',
        r"(?m)^#? ?key_prefix = .*$": f'key_prefix = "{settings.redis.key_prefix}"',
        r"(?m)^keyspace = .*$": f'keyspace = "{settings.cassandra.keyspace}"',
        r"(?m)^hosts = .*$": f"hosts = {hosts}",
        r"(?m)^port = 9042$": f"port = {settings.cassandra.port}",
        r"(?m)^job_timeout = .*$": f"job_timeout = {settings.worker.job_timeout}\npoll_delay = 0.02",
    }
    text = (ROOT / "config.toml").read_text()
    for pattern, repl in subs.items():
        text, n = re.subn(pattern, lambda _m, r=repl: r, text)
        assert n == 1, pattern
    text += f'\n[apps.{APP}]\nsecret = "{settings.apps[APP].secret}"\n'
    path.write_text(text)


@dataclass
class OwnHub:
    """``hub serve`` and ``hub worker`` as subprocesses, logging into ``dir``."""

    settings: Settings
    dir: Path
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config = self.dir / "config.toml"
        write_config(self.settings, self.port, self.config)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, command: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        extra = ["--verbose"] if command == "worker" else []
        with (self.dir / f"{command}.log").open("ab") as out:
            self.procs[command] = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "--config", str(self.config), command, *extra],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )

    def running(self, command: str) -> bool:
        return self.procs[command].poll() is None

    def log(self, command: str) -> str:
        path = self.dir / f"{command}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                assert self.running("serve"), self.log("serve")[-3000:]
                try:
                    async with s.get(self.url + "/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"hub serve not ready in {timeout} s: {self.log('serve')[-3000:]}")

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


class Running:
    """The service instances a test started and has not killed: stopped at the end,
    whatever happened (a killed one is never signalled again: its pid may be reused)."""

    def __init__(self) -> None:
        self.services: list[ManagedService] = []

    def add(self, service: ManagedService | None) -> None:
        assert service is not None, "something already answers there"
        self.services.append(service)

    def kill_9(self) -> None:
        service = self.services.pop()
        os.kill(service.pid, signal.SIGKILL)
        service.stop()  # reaps it (it is dead: nothing is signalled) and removes its pid file

    def stop_all(self) -> None:
        while self.services:
            self.services.pop().stop()


@dataclass
class Stats:
    posts: int = 0
    retries: int = 0
    refusals: dict[int, int] = field(default_factory=dict)  # status (0: no answer) -> count
    reads: int = 0
    failed_reads: int = 0
    # foreign_id -> activity id, for every post answered 202
    accepted: dict[str, str] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)  # foreign_id -> tries it took
    attempts: list[tuple[float, float, int, int]] = field(default_factory=list)  # (start, seconds, status, try)

    def durations(self, since: float, until: float, first: bool | None = None) -> list[float]:
        """How long each post try started in ``[since, until)`` (monotonic) took, sorted:
        first tries, repeats, or (None) both."""
        return sorted(d for t, d, _, n in self.attempts if since <= t < until and first in (None, n == 1))

    def latencies(self, since: float, first: bool) -> str:
        """Post tries started at or after ``since`` (monotonic), first tries or repeats:
        how long they took."""
        took = self.durations(since, float("inf"), first)
        if not took:
            return "no tries"
        return (f"{len(took)} tries: p50 {took[len(took) // 2]:.2f} s, p99 {took[int(len(took) * 0.99)]:.2f} s, "
                f"max {took[-1]:.2f} s, {sum(d > 3 for d in took)} over 3 s")


class AppClient:
    """Signed calls over HTTP, as an app makes them: a post that is not answered 202 is
    sent again with the same ``webhook-id`` and body until it is, after 0.5 s doubling to
    4 s (bounded by a deadline)."""

    def __init__(self, session: aiohttp.ClientSession, hub: OwnHub, app: AppSettings) -> None:
        self.session, self.hub, self.app = session, hub, app
        self.stats = Stats()

    async def call(self, method: str, path: str, payload: object = None,
                   msg_id: str | None = None) -> tuple[int, Any]:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = sign(self.app, body, msg_id)
        url = f"{self.hub.url}/v1/apps/{self.app.id}{path}"
        try:
            async with self.session.request(method, url, data=body, headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=20)) as r:
                text = await r.text()
                return r.status, json.loads(text) if text else None
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return 0, None

    async def post(self, activity: dict[str, Any], give_up_at: float) -> str | None:
        """Post until 202 (or ``give_up_at``, monotonic): the activity's id, or None."""
        msg_id = "msg_" + secrets.token_hex(8)
        fid = str(activity["foreign_id"])
        self.stats.posts += 1
        while time.monotonic() < give_up_at:
            start = time.monotonic()
            status, answer = await self.call("POST", "/activities", activity, msg_id)
            self.stats.tries[fid] = self.stats.tries.get(fid, 0) + 1
            self.stats.attempts.append((start, time.monotonic() - start, status, self.stats.tries[fid]))
            if status == 202:
                aid = str(answer["activities"][0]["id"])
                self.stats.accepted[fid] = aid
                return aid
            assert status in (0, 503), (status, answer)  # an outage is 503 (or no answer), never 500
            self.stats.refusals[status] = self.stats.refusals.get(status, 0) + 1
            self.stats.retries += 1
            await asyncio.sleep(min(4.0, 0.5 * 2 ** (self.stats.tries[fid] - 1)))
        return None

    async def feed_ids(self, group: str, user: str) -> list[str] | None:
        """Every activity id of a feed, read page by page (None if a page failed)."""
        ids: list[str] = []
        cursor = ""
        for _ in range(100):
            status, page = await self.call("GET", f"/feeds/{group}/{user}?limit=100&id_lt={cursor}")
            if status != 200:
                return None
            for entry in page["results"]:
                if "activities" in entry:  # aggregated: a group
                    ids.extend(a["id"] for a in entry["activities"])
                else:
                    ids.append(entry["id"])
            cursor = page.get("next") or ""
            if not cursor:
                return ids
        raise AssertionError("a feed of more than 100 pages")

    async def group_counts(self, group: str, user: str) -> int | None:
        """The sum of ``activity_count`` over an aggregated feed's groups."""
        status, page = await self.call("GET", f"/feeds/{group}/{user}?limit=100")
        return sum(g["activity_count"] for g in page["results"]) if status == 200 else None


async def post_stream(client: AppClient, authors: list[str], rate: float, stop: asyncio.Event,
                      tag: str, give_up_at: float) -> None:
    """Post ``rate`` activities a second, round-robin over ``authors``, until ``stop``;
    then wait for every post still being retried."""
    tasks: list[asyncio.Task[str | None]] = []
    n = 0
    start = time.monotonic()
    while not stop.is_set():
        author = authors[n % len(authors)]
        activity = {"actor": author, "verb": "post", "object": f"note:{n}", "foreign_id": f"{tag}:{n}"}
        tasks.append(asyncio.create_task(client.post(activity, give_up_at)))
        n += 1
        await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
    await asyncio.gather(*tasks)


async def read_loop(client: AppClient, group: str, users: list[str], stop: asyncio.Event) -> None:
    """Readers: each user's first page, over and over (their feeds stay cached)."""
    n = 0
    while not stop.is_set():
        status, _ = await client.call("GET", f"/feeds/{group}/{users[n % len(users)]}?limit=25")
        client.stats.reads += 1
        client.stats.failed_reads += status != 200
        n += 1
        await asyncio.sleep(0.05)


async def missing_entries(client: AppClient, followers: list[str], expected: set[str]) -> dict[str, set[str]]:
    """Per follower, the ids of ``expected`` their timeline lacks (all of them if unreadable)."""
    missing: dict[str, set[str]] = {}
    for f in followers:
        ids = await client.feed_ids("timeline", f)
        missing[f] = set(expected) if ids is None else expected - set(ids)
    return {f: ids for f, ids in missing.items() if ids}


async def aggregated_short(client: AppClient, followers: list[str], count: int) -> dict[str, int | None]:
    """Followers whose ``timeline_aggregated`` counts fewer (or more) than ``count``
    activities over its groups, with what it counts (None: unreadable)."""
    counts = {f: await client.group_counts("timeline_aggregated", f) for f in followers}
    return {f: n for f, n in counts.items() if n != count}


async def wait_complete(client: AppClient, followers: list[str], expected: set[str],
                        timeout: float) -> tuple[dict[str, set[str]], float]:
    """Poll until every follower's timeline holds every expected id: (what is missing at
    the end, seconds it took)."""
    start = time.monotonic()
    missing = await missing_entries(client, followers, expected)
    while missing and time.monotonic() - start < timeout:
        await asyncio.sleep(2.0)
        missing = await missing_entries(client, followers, expected)
    return missing, time.monotonic() - start


async def wait_aggregated(client: AppClient, followers: list[str], count: int,
                          timeout: float) -> dict[str, int | None]:
    """Poll until every follower's aggregated timeline counts ``count`` activities: the
    followers whose count is still off at the end."""
    deadline = time.monotonic() + timeout
    short = await aggregated_short(client, followers, count)
    while short and time.monotonic() < deadline:
        await asyncio.sleep(2.0)
        short = await aggregated_short(client, followers, count)
    return short


def with_redis(settings: Settings, port: int) -> Settings:
    return dataclasses.replace(settings, redis=dataclasses.replace(
        settings.redis, url=f"redis://127.0.0.1:{port}/0", key_prefix=settings.redis.key_prefix + ":faults"))


def with_cassandra(settings: Settings, host: str) -> Settings:
    return dataclasses.replace(
        settings,
        cassandra=dataclasses.replace(settings.cassandra, hosts=(host,)),
        redis=dataclasses.replace(settings.redis, key_prefix=settings.redis.key_prefix + ":cfaults"),
    )
