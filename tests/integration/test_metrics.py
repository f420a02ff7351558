"""Metrics (docs/api.md, Metrics): what an operator's Prometheus sees, from real requests,
real jobs and real sockets against the running Redis and Cassandra."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import realtime
from hub.config import Settings
from hub.core import Hub
from hub.domain.ids import IdGenerator
from hub.errors import Unavailable
from hub.metrics import HubMetrics, dependency_of
from hub.ops.rebuild import ensure_built
from tests.conftest import ROOT, AppCaller, uid
from tests.helpers import token, wait_for
from tests.integration.test_crash import stop, worker_config
from workers.jobs.fanout import _observe_lag

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels`` (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def has(samples: Samples, name: str, **labels: str) -> bool:
    want = set(labels.items())
    return any(n == name and want <= ls for (n, ls), _ in samples.items())


async def scrape(client: Any, path: str = "/metrics") -> Samples:
    r = await client.get(path)
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/plain")
    return parse(await r.text())


def make_app(settings: Settings):  # type: ignore[no-untyped-def]
    from web.app import create_app
    from web.keys import HUB

    app = create_app(settings)
    realtime.setup(app, settings, get_hub=lambda a: a[HUB])
    return app


async def test_post_with_followers_and_a_worker_run(settings: Settings, aiohttp_client: Any) -> None:
    """Accepted, fan-out lag (once per activity although its followers span two chunks),
    entries by group, job outcomes and durations, queue depth, rebuilds; the two metrics
    of features not built yet exist at zero."""
    from web.keys import HUB, METRICS
    from workers.main import run_workers

    s = dataclasses.replace(settings, fanout=dataclasses.replace(settings.fanout, chunk_size=1))
    app = make_app(s)
    client = await aiohttp_client(app)
    t1 = AppCaller(client, s.apps["t1"])
    alice, bob, carol = uid("alice"), uid("bob"), uid("carol")
    for f in (bob, carol):
        r = await t1.call("PUT", "/follows", {"follower": f, "followee": alice})
        assert r.status == 204, await r.text()
    for f in (bob, carol):  # fan-out writes only feeds that are cached: cache them (empty)
        await ensure_built(app[HUB], "t1", s.feeds["timeline"], f)
    before = await scrape(client)
    r = await t1.call("POST", "/activities", {"actor": alice, "verb": "post", "object": "photo:1"})
    assert r.status == 202, await r.text()
    aid = (await r.json())["activities"][0]["id"]

    # The worker runs in this process, observing into the app's registry.
    hub = app[HUB]
    stopped = asyncio.Event()
    task = asyncio.create_task(run_workers(s, stop=stopped, metrics=app[METRICS]))
    try:
        async def arrived() -> bool:  # in both feeds, and both chunk jobs over
            m = await scrape(client)
            return (all([aid in await hub.feeds.flat_ids("t1", f"timeline:{f}", 10) for f in (bob, carol)])
                    and value(m, "hub_jobs_total", job="fanout_chunk", outcome="ok") >= 2)

        assert await wait_for(arrived, 30)
    finally:
        stopped.set()
        await asyncio.wait_for(task, 30)
    # The lag was counted by the two chunks in Redis: both are there.
    assert await hub.redis.scard(f"{s.redis.key_prefix}:lag:t1:{aid}") == 2

    m = await scrape(client)
    assert value(m, "hub_activities_accepted_total", app="t1") - value(before, "hub_activities_accepted_total",
                                                                      app="t1") == 1
    assert value(m, "hub_http_requests_total", status="202") >= 1
    assert value(m, "hub_http_request_seconds_count") >= 3
    assert value(m, "hub_fanout_lag_seconds_count") >= 1
    assert value(m, "hub_fanout_lag_seconds_sum") > 0
    assert value(m, "hub_fanout_entries_total", group="timeline") >= 2
    assert value(m, "hub_jobs_total", job="fanout", outcome="ok") >= 1
    assert value(m, "hub_jobs_total", job="fanout_chunk", outcome="ok") >= 2
    assert value(m, "hub_job_seconds_count", job="fanout_chunk") >= 2
    assert value(m, "hub_feed_rebuilds_total", kind="flat") >= 2
    for q in ("high", "low"):
        assert has(m, "hub_queue_depth", queue=q)
    for name in ("hub_webhook_deliveries_total", "hub_emails_total"):
        assert has(m, name) and value(m, name) == 0
    assert has(m, "hub_dependency_errors_total", dependency="redis")


async def test_lag_is_observed_once_when_the_last_chunk_is_written(settings: Settings, hub: Hub) -> None:
    """Chunks finish in any order and may run twice: the one that completes the set observes."""
    aid = IdGenerator().new()
    lag = hub.metrics.fanout_lag

    def count() -> float:
        return sum(s.value for f in lag.collect() for s in f.samples if s.name.endswith("_count"))

    await _observe_lag(hub, "t1", aid, "chunk:b", 3)
    await _observe_lag(hub, "t1", aid, "chunk:a", 3)
    await _observe_lag(hub, "t1", aid, "chunk:a", 3)  # a re-run
    assert count() == 0
    await _observe_lag(hub, "t1", aid, "chunk:c", 3)
    assert count() == 1
    await _observe_lag(hub, "t1", aid, "chunk:c", 3)  # a re-run of the last
    assert count() == 1
    await _observe_lag(hub, "t1", IdGenerator().new(), "chunk:x", 1)  # one chunk: no Redis
    assert count() == 2


def test_dependency_of() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    assert dependency_of(RedisConnectionError("refused")) == "redis"
    assert dependency_of(Unavailable("Cassandra: NoHostAvailable")) == "cassandra"
    try:
        raise Unavailable("down") from RedisConnectionError("x")
    except Unavailable as e:
        assert dependency_of(e) == "redis"
    assert dependency_of(ValueError("x")) == "other"


async def test_websocket_connections_and_frames(settings: Settings, aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app(settings))
    user = uid("ws")
    ws = await client.ws_connect(f"/v1/realtime?token={token(settings, user)}",
                                 headers={"Origin": "http://127.0.0.1:8080"})
    await ws.send_json({"op": "subscribe", "feed": f"timeline:{user}"})
    assert json.loads((await ws.receive(timeout=10)).data)["op"] == "subscribed"
    await ws.send_json({"op": "ping"})
    assert json.loads((await ws.receive(timeout=10)).data)["op"] == "pong"
    m = await scrape(client)
    assert value(m, "hub_ws_connections") == 1
    assert value(m, "hub_ws_frames_total", op="subscribed") == 1
    assert value(m, "hub_ws_frames_total", op="pong") == 1
    await ws.close()

    async def gone() -> bool:
        return value(await scrape(client), "hub_ws_connections") == 0

    assert await wait_for(gone)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_worker_metrics_port(settings: Settings, hub: Hub) -> None:
    """``hub worker --metrics-port N``: a subprocess serves its own metrics on N."""
    tmp = Path(tempfile.mkdtemp(prefix="hub-metrics-"))
    config, log = tmp / "config.toml", tmp / "worker.log"
    worker_config(settings, config)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "--config", str(config), "worker", "--metrics-port", str(port)],
        cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    try:
        job = await hub.queue.enqueue_job("ping", "metrics", _queue_name=f"{settings.redis.key_prefix}:queue:high")
        assert job is not None
        await asyncio.wait_for(job.result(poll_delay=0.05), 60)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 200
                m = parse(await r.text())
        assert value(m, "hub_jobs_total", job="ping", outcome="ok") >= 1
        assert has(m, "hub_queue_depth", queue="high")
    finally:
        stop(proc)
        print(log.read_text()[-2000:])


DASHBOARD = ROOT / "docs" / "grafana-hub.json"


def test_grafana_dashboard_uses_only_exported_metrics() -> None:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = {re.sub(r"_(bucket|count|sum)$", "", n) for e in exprs for n in re.findall(r"\bhub_[a-z_]+", e)}
    exported = {f.name for f in HubMetrics().registry.collect()}
    # prometheus_client names counters without their _total in collect(); the series have it.
    exported |= {f"{n}_total" for n in exported}
    assert used and used <= exported, used - exported
    for wanted in ("hub_http_requests_total", "hub_http_request_seconds", "hub_fanout_lag_seconds",
                   "hub_queue_depth", "hub_jobs_total", "hub_feed_rebuilds_total", "hub_ws_connections",
                   "hub_ws_frames_total", "hub_ws_dropped_total", "hub_dependency_errors_total"):
        assert wanted in used, wanted


@pytest.fixture(autouse=True)
def _no_global_registry() -> None:
    """Nothing here registers in prometheus_client's global registry."""
    from prometheus_client import REGISTRY

    assert not [n for n in REGISTRY._names_to_collectors if n.startswith("hub_")]
