"""The load generators of ``hub bench intake``: signed activities, aiohttp clients and wrk.

Every activity is unique (a fresh ``foreign_id``, one of 1,000 actors) and every request
has a fresh ``webhook-id`` and its own signature, so nothing is answered as a repeat.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import time
from dataclasses import dataclass, field

import aiohttp

from bench.common import Environment, Progress, info, percentile, signed_headers
from bench.cpu import CpuMeter
from bench.wrk import DONE_LUA, ensure_wrk, run_wrk

ACTORS = 1000


@dataclass
class Load:
    name: str
    seconds: float
    requests: int = 0
    items: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    measured: tuple[float, float] | None = None  # (p50, p99) in ms from wrk, instead of latencies

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def ips(self) -> float:
        return self.items / self.seconds

    def p(self, q: float) -> float:
        if self.measured is not None:
            return self.measured[0] if q == 50 else self.measured[1]
        return percentile([x * 1000 for x in self.latencies], q)

    def lat(self) -> str:
        return f"p50 {self.p(50):.1f} ms, p99 {self.p(99):.1f} ms"

    def errs(self) -> str:
        return f", errors {self.errors}" if self.errors else ""


def with_foreign_id() -> bool:
    """HUB_BENCH_FOREIGN_ID=0 leaves foreign_id out (no lightweight transaction): a comparison run."""
    return os.environ.get("HUB_BENCH_FOREIGN_ID", "1") != "0"


class Activities:
    """Unique activities: random actors, a fresh foreign_id each."""

    def __init__(self) -> None:
        self.run = secrets.token_hex(3)
        self.n = itertools.count()
        self.foreign_id = with_foreign_id()

    def one(self) -> dict[str, object]:
        i = next(self.n)
        a: dict[str, object] = {"actor": f"actor-{i % ACTORS}", "verb": "like", "object": f"photo:{i}",
                                "extra": {"text": "nice"}}
        if self.foreign_id:
            a["foreign_id"] = f"like:{self.run}:{i}"
        return a

    def body(self, batch: int) -> bytes:
        if batch == 1:
            return json.dumps(self.one()).encode()
        return json.dumps({"activities": [self.one() for _ in range(batch)]}).encode()


async def drive(env: Environment, name: str, clients: int, seconds: float, *, batch: int | None,
                meter: CpuMeter | None = None) -> Load:
    """``clients`` loops, each sending one request after the other for ``seconds``.

    ``batch`` None sends GET /healthz; else signed POSTs of ``batch`` activities.
    """
    load = Load(name, seconds)
    gen = Activities()
    path = f"/v1/apps/{env.app.id}/activities"
    bar = Progress(name, int(seconds * 10), "x0.1s")
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(env.url, connector=conn) as http:
        # Warm up connections (not counted).
        await asyncio.gather(*(_warm(http) for _ in range(clients)))
        start = time.perf_counter()
        end = start + seconds

        async def client() -> None:
            while time.perf_counter() < end:
                if batch is None:
                    t0 = time.perf_counter()
                    async with http.get("/healthz") as r:
                        await r.read()
                        status, n = r.status, 1
                else:
                    body = gen.body(batch)
                    headers = signed_headers(env.app, body)
                    t0 = time.perf_counter()
                    async with http.post(path, data=body, headers=headers) as r:
                        await r.read()
                        status, n = r.status, batch
                dt = time.perf_counter() - t0
                if status in (200, 202):
                    load.requests += 1
                    load.items += n
                    load.latencies.append(dt)
                else:
                    load.errors[status] = load.errors.get(status, 0) + 1

        async def ticker() -> None:
            while time.perf_counter() < end:
                await asyncio.sleep(0.1)
                bar.update(min(bar.total, int((time.perf_counter() - start) * 10)))

        if meter:
            meter.start()
        await asyncio.gather(ticker(), *(client() for _ in range(clients)))
        load.seconds = time.perf_counter() - start
        if meter:
            load.cpu = meter.stop()
    bar.close()
    env.check_alive()
    return load


# wrk, one thread: the requests are formatted once in init, then sent in order (a
# connection sends its next one when the previous is answered, like the Python clients).
_WRK_LUA = """
local reqs = {}
init = function(args)
  if args[1] == nil then return end
  for line in io.lines(args[1]) do
    local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", args[2], {["webhook-id"] = id, ["webhook-timestamp"] = ts,
      ["webhook-signature"] = sig, ["content-type"] = "application/json"}, body)
  end
end
local n = 0
request = function()
  if #reqs == 0 then return wrk.format("GET", "/healthz") end
  n = n + 1
  return reqs[(n - 1) % #reqs + 1]
end
%(done)s
"""


async def wrk_load(
    env: Environment, name: str, clients: int, seconds: float, *, post: bool, meter: CpuMeter | None = None
) -> Load:
    """``clients`` wrk connections for ``seconds``: signed single-activity POSTs, each
    request signed here beforehand (unique webhook-id and foreign_id), or GET /healthz
    when not ``post``. wrk is C: the load generator takes little of the 2 cores."""
    script = env.tmp / "intake.lua"
    script.write_text(_WRK_LUA.replace("%(done)s", DONE_LUA))
    argv = [ensure_wrk(), "-t1", f"-c{clients}", f"-d{int(seconds)}s", "--timeout", "5s", "-s", str(script), env.url]
    n = 0
    if post:
        gen, path = Activities(), f"/v1/apps/{env.app.id}/activities"
        data = env.tmp / "intake-requests.tsv"
        n = int(seconds * 3000)  # more than this machine answers, so none is sent twice
        with data.open("w") as f:
            for _ in range(n):
                body = gen.body(1)
                h = signed_headers(env.app, body)
                f.write(f"{h['webhook-id']}\t{h['webhook-timestamp']}\t{h['webhook-signature']}\t{body.decode()}\n")
        argv += ["--", str(data), path]
    info(f"{name}: wrk {' '.join(argv[1:8])}")
    if meter:
        meter.start()
    r = await run_wrk(env, argv)
    load = Load(name, seconds)
    if meter:
        load.cpu = meter.stop()
    if post and r["requests"] > n:
        raise RuntimeError(f"wrk sent {r['requests']} requests, more than the {n} prepared")
    load.seconds = r["duration_us"] / 1e6
    load.requests = load.items = r["requests"] - r["errors"]
    load.measured = (r["p50"] / 1000, r["p99"] / 1000)
    if r["errors"]:
        load.errors[0] = r["errors"]
    return load


async def _warm(http: aiohttp.ClientSession) -> None:
    async with http.get("/healthz") as r:
        await r.read()
