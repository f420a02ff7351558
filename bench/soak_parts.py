"""The parts of ``hub bench soak`` (bench/soak.py): who follows whom, the socket client
processes that time sampled activities' frames, and per-process CPU and RSS from /proc.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import multiprocessing as mp
import os
import queue
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import Environment, gather_limited
from bench.cpu import machine_cpu, process_cpu
from hub.domain.tokens import issue_token
from hub.storage.follows import Follow

GROUPS = ("timeline", "timeline_aggregated")  # the feeds fed by follows
WATCHED = "timeline_aggregated"  # the one the sockets subscribe to (see bench/soak_samples.py)
MARKER = "soak-sample:"  # the object of a sampled activity: the clients parse only frames naming it


@dataclass(frozen=True)
class Layout:
    """Users, authors and follows, built so that every follower of a *probe* author has a
    socket: a sampled post is by a probe author, so its frames on every follower feed are
    seen. Socket users follow only probe authors and the others only the rest, round-robin,
    so every author has about the same number of followers."""

    users: list[str]
    authors: list[str]
    probes: list[str]
    socket_users: list[str]
    followers: dict[str, list[str]] = field(default_factory=dict)

    @staticmethod
    def make(n_users: int, n_authors: int, n_sockets: int, follows: int) -> Layout:
        n_sockets = max(1, min(n_sockets, n_users - 1))
        n_probes = min(n_authors - 1, max(1, round(n_authors * n_sockets / n_users)))
        users = [f"soak-user-{i}" for i in range(n_users)]
        authors = [f"soak-author-{i}" for i in range(n_authors)]
        probes, rest = authors[:n_probes], authors[n_probes:]
        followers: dict[str, list[str]] = {a: [] for a in authors}
        for i, u in enumerate(users):
            pool = probes if i < n_sockets else rest
            f = min(follows, len(pool))
            for k in range(f):
                followers[pool[(i * f + k) % len(pool)]].append(u)
        return Layout(users, authors, probes, users[:n_sockets], followers)


async def set_up(env: Environment, layout: Layout) -> None:
    """Follows through ``FollowStore.add``; every user's follow-fed caches built empty and
    the users marked active (as fanout's set-up does), so fan-out writes into them."""
    from workers.context import close_hub, open_hub

    s, app = env.settings, env.app.id
    hub = await open_hub(s)
    try:
        pairs = [(u, a) for a, us in layout.followers.items() for u in us]
        await gather_limited(64, (hub.follows.add(app, Follow(u, a, None, 0)) for u, a in pairs), "follows", len(pairs))

        async def build(u: str) -> None:
            for g in GROUPS:
                await hub.feeds.start_build(app, s.feeds[g], f"{g}:{u}")
                await hub.feeds.finish_build(app, f"{g}:{u}")

        await gather_limited(64, (build(u) for u in layout.users), "feed caches", len(layout.users))
        now = time.time()
        pipe = hub.redis.pipeline(transaction=False)
        for u in layout.users:
            pipe.zadd(hub.follows.keys(app).active(), {u: now})  # = FollowStore.touch_active, batched
        await pipe.execute()
    finally:
        await close_hub(hub)


# -- socket client processes ----------------------------------------------------------------

def _client_proc(idx: int, url: str, users: list[str], tokens: list[str], q: Any, stop: Any) -> None:
    import uvloop

    uvloop.install()
    try:
        asyncio.run(_client_main(idx, url, users, tokens, q, stop))
    except Exception as e:  # told to the parent, which would otherwise wait for "ready"
        q.put(("failed", idx, [], {"error": repr(e)}))


async def _client_main(idx: int, url: str, users: list[str], tokens: list[str], q: Any, stop: Any) -> None:
    """One socket per user, subscribed to its WATCHED feed. Reports, once a second, the
    first arrival (time.monotonic, system-wide) of each sampled activity on each feed: an
    aggregated entry lists its group's newest activities (a flat one would be the activity)."""
    ws_url = url.replace("http://", "ws://") + "/v1/realtime?token="
    seen: set[tuple[str, str]] = set()
    batch: list[tuple[str, str, float]] = []
    stats = {"frames": 0, "closed": 0, "errors": 0}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        sem = asyncio.Semaphore(50)
        sockets: list[aiohttp.ClientWebSocketResponse] = []

        async def open_one(user: str, tok: str) -> None:
            async with sem:
                ws = await s.ws_connect(ws_url + tok, heartbeat=None, max_msg_size=0)
                await ws.send_str(json.dumps({"op": "subscribe", "feed": f"{WATCHED}:{user}"}))
                msg = await ws.receive(timeout=60)
                if json.loads(msg.data).get("op") != "subscribed":
                    raise RuntimeError(f"subscribe {WATCHED}:{user}: {msg.data!r}")
                sockets.append(ws)

        await asyncio.gather(*(open_one(u, t) for u, t in zip(users, tokens)))

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                now = time.monotonic()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                stats["frames"] += 1
                if MARKER not in msg.data:  # cheap: most flat frames are not sampled
                    if '"op":"error"' in msg.data.replace(" ", ""):
                        stats["errors"] += 1
                    continue
                f = json.loads(msg.data)
                if f.get("op") != "entry":
                    continue
                e = f["entry"]
                for a in e.get("activities", [e]):
                    if str(a.get("object", "")).startswith(MARKER) and (f["feed"], a["id"]) not in seen:
                        seen.add((f["feed"], a["id"]))
                        batch.append((f["feed"], a["id"], now))
            stats["closed"] += 1

        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        q.put(("ready", idx, [], {"sockets": len(sockets)}))
        while not stop.is_set():
            await asyncio.sleep(1.0)
            q.put(("seen", idx, batch[:], dict(stats)))
            batch.clear()
        for t in readers:
            t.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    q.put(("done", idx, [], dict(stats)))


class Sockets:
    """``n`` client processes (spawned: they share neither this process's loop nor its GIL)."""

    def __init__(self, env: Environment, users: list[str], ttl: int, procs: int = 2) -> None:
        ctx = mp.get_context("spawn")
        self.q = ctx.Queue()
        self.stop = ctx.Event()
        app, now = env.app, int(time.time())
        toks = [issue_token(app.id, app.key, u, ttl, now=now) for u in users]
        procs = max(1, min(procs, len(users)))
        self.procs = [ctx.Process(target=_client_proc, args=(i, env.url, users[i::procs], toks[i::procs], self.q,
                                                              self.stop), daemon=True) for i in range(procs)]
        self.latest: dict[int, dict[str, int]] = {}  # each process's running totals

    async def start(self) -> int:
        for p in self.procs:
            p.start()
        n, ready, deadline = 0, 0, time.monotonic() + 300
        while ready < len(self.procs):
            try:
                kind, _, _, stats = await asyncio.to_thread(self.q.get, True, 1.0)
            except queue.Empty:
                dead = [p.exitcode for p in self.procs if p.exitcode is not None]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"socket client processes not ready (exit codes {dead})") from None
                continue
            if kind != "ready":
                raise RuntimeError(f"a socket client process failed to start: {stats}")
            ready, n = ready + 1, n + stats["sockets"]
        return n

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def drain(self) -> list[tuple[str, str, float]]:
        """Every (feed, activity id, first arrival) reported since the last call."""
        out: list[tuple[str, str, float]] = []
        while True:
            try:
                _, idx, seen, stats = self.q.get_nowait()
            except queue.Empty:
                return out
            out += seen
            self.latest[idx] = stats

    def total(self, key: str) -> int:
        """``key`` (frames, closed, errors) summed over the processes' latest reports."""
        return sum(s.get(key, 0) for s in self.latest.values())

    async def finish(self) -> None:
        """Stop the clients, reading the queue meanwhile (a process exits only once what it
        put there has been read)."""
        self.stop.set()
        deadline = time.monotonic() + 30
        while any(p.is_alive() for p in self.procs) and time.monotonic() < deadline:
            self.drain()
            await asyncio.sleep(0.2)
        for p in self.procs:
            if p.is_alive():
                p.kill()


# -- processes: CPU and RSS -------------------------------------------------------------------

def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class ProcessMeter:
    """CPU% (of one core) and RSS of named processes between two calls of :meth:`sample`."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self._last = self._read()

    def _read(self) -> tuple[float, dict[str, float], tuple[float, float]]:
        return time.monotonic(), {n: sum(process_cpu(p) for p in ps) for n, ps in self.pids.items()}, machine_cpu()

    def sample(self) -> tuple[dict[str, tuple[float, float]], float]:
        """({name: (cpu %, rss MiB)}, machine busy %) since the last call."""
        t0, c0, m0 = self._last
        self._last = t1, c1, m1 = self._read()
        dt = max(1e-6, t1 - t0)
        procs = {n: (100 * (c1[n] - c0[n]) / dt, sum(rss_mib(p) for p in self.pids[n])) for n in self.pids}
        total = m1[1] - m0[1]
        return procs, (100 * (m1[0] - m0[0]) / total if total else 0.0)


def process_pids(env: Environment, redis_pid: int | None, clients: list[int]) -> dict[str, list[int]]:
    """server, each worker, Redis, Cassandra, and the bench's own processes (load and sockets)."""
    from hub import services

    pids: dict[str, list[int]] = {n: [p.pid] for n, p in env.procs}
    for st in services.status(env.settings):
        if st.pid:
            pids[st.name] = [st.pid]
    if "redis" not in pids and redis_pid:
        pids["redis"] = [redis_pid]
    if "cassandra" not in pids:  # not started from this checkout: whoever listens on its port
        c = env.settings.cassandra
        found = listener_pid(c.hosts[0], c.port)
        if found:
            pids["cassandra"] = [found]
    pids["bench"] = [os.getpid(), *clients]
    return pids


def listener_pid(host: str, port: int) -> int | None:
    """The pid of the process listening on an IPv4 ``host:port`` (Linux /proc), or None."""
    want = f"{ipaddress.IPv4Address(host).packed[::-1].hex().upper()}:{port:04X}"
    inodes = set()
    try:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            if f[1] in (want, f"00000000:{port:04X}") and f[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{f[9]}]")
    except OSError:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None


def log_counts(env: Environment) -> dict[str, int]:
    """What the processes logged that delays fan-out: jobs failed in the workers (arq:
    "! <job> failed, <Error>: ...", by error; a failed fan-out job waits for the sweep, 20 s
    and more), and activities intake stored but left to the sweep (server log)."""
    out: dict[str, int] = {}
    for name, _ in env.procs:
        path = env.tmp / f"{name}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            m = re.search(r" failed, (\w+)", line) if name.startswith("worker") else None
            key = f"job failed ({m.group(1)})" if m else "left to the sweep by intake" if (
                "the sweep will fan them out" in line or "left to the sweep" in line) else None
            if key:
                out[key] = out.get(key, 0) + 1
    return out
