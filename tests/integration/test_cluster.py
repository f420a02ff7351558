"""The hub on a three-node Cassandra cluster (replication factor 3), as config.cluster.toml runs it.

One cluster for the module, started the way ``hub services start`` starts it (three nodes
on 127.0.0.2-4 together, their directories in a temporary state dir) and stopped at the
end. Nothing else in the suite uses these addresses (the fault tests pick 127.0.0.5 and
up). Two hubs (``hub serve`` and ``hub worker`` each, as subprocesses) share the cluster
and the shared Redis, under this module's own key prefix and keyspace.

Contract sections 6 and 7: with one node killed, every post is answered 202 at its first
try and reaches every follower; after the node is back, feeds rebuilt from Cassandra (Redis keys
deleted) hold every accepted activity; a change posted through one gateway reaches a
socket on the other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub import services
from hub.config import Settings, load_settings
from hub.services.cassandra_cluster import node_instance, stop_cluster
from hub.services.cassandra_local import cql_answers
from hub.storage import redis as redis_storage
from hub.storage.schema import migrate
from tests.conftest import uid
from tests.faulthub import APP, AppClient, OwnHub, Stats, post_stream, wait_aggregated, wait_complete
from tests.helpers import token

pytestmark = pytest.mark.slow

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
VICTIM = HOSTS[2]
AUTHORS, FOLLOWERS = 3, 6
RATE = 20.0  # posts a second
BEFORE_KILL, DOWN = 6.0, 12.0  # seconds of posting


def quiet(_message: str) -> None:
    pass


class Client(AppClient):
    """AppClient keeping every 503's body and how long it took, for the failure message."""

    refused: list[tuple[float, Any]]

    async def call(self, method: str, path: str, payload: object = None,
                   msg_id: str | None = None) -> tuple[int, Any]:
        start = time.monotonic()
        status, answer = await super().call(method, path, payload, msg_id)
        if status not in (200, 202, 204):
            self.refused = getattr(self, "refused", [])
            self.refused.append((round(time.monotonic() - start, 2), answer))
        return status, answer


@pytest.fixture(scope="module")
def cluster(base_settings: Settings, running_services: list[services.ManagedService]) -> Iterator[Settings]:
    """Settings for the three-node cluster, which runs for the whole module."""
    taken = [h for h in HOSTS if cql_answers(h, base_settings.cassandra.port)]
    assert not taken, (f"Cassandra already answers on {', '.join(taken)}: this test needs 127.0.0.2-4 to itself "
                       "(a cluster of config.cluster.toml? `hub --config config.cluster.toml services stop`)")
    state = Path(tempfile.mkdtemp(prefix="hub-cluster-"))
    s = dataclasses.replace(
        base_settings,
        cassandra=dataclasses.replace(base_settings.cassandra, hosts=HOSTS, replication_factor=3,
                                      keyspace=base_settings.cassandra.keyspace + "_cluster"),
        redis=dataclasses.replace(base_settings.redis, key_prefix=base_settings.redis.key_prefix + ":cluster"),
        services=dataclasses.replace(base_settings.services, state_dir=state, cassandra_heap_mb=256),
    )
    try:
        t = time.monotonic()
        started = services.start(s, quiet)
        assert len(started) == 3, started
        print(f"three nodes answer after {time.monotonic() - t:.1f} s")
        asyncio.run(migrate(s.cassandra))
        yield s
    finally:
        stop_cluster(s.cassandra, state, quiet)
        # The nodes' logs are kept for a failure's post-mortem (each run overwrites the last).
        for log in state.glob("*/cassandra.log"):
            keep = Path(tempfile.gettempdir()) / "hub-cluster-logs" / log.parent.name
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, keep / log.name)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def hubs(cluster: Settings) -> Iterator[tuple[OwnHub, OwnHub]]:
    """Two hubs on the cluster: each its own ``hub serve`` (own port) and ``hub worker``."""
    dirs = [Path(tempfile.mkdtemp(prefix="hub-cluster-hub-")) for _ in range(2)]
    pair = (OwnHub(cluster, dirs[0]), OwnHub(cluster, dirs[1]))
    for own in pair:
        # tests/faulthub.py writes config.toml's replication factor (1, hence consistency
        # one): the cluster's is 3, which makes every statement local_quorum.
        text = own.config.read_text()
        assert text.count("replication_factor = 1\n") == 1
        own.config.write_text(text.replace("replication_factor = 1\n", "replication_factor = 3\n"))
        assert load_settings(own.config, env={}).cassandra.level == "local_quorum"
    try:
        for own in pair:
            own.start("serve")
            own.start("worker")
        for own in pair:
            asyncio.run(own.wait_ready())
        yield pair
    finally:
        for i, own in enumerate(pair):
            own.stop()
            # Kept for a failure's post-mortem (each run overwrites the last).
            keep = Path(tempfile.gettempdir()) / "hub-cluster-logs" / f"hub{i}"
            shutil.copytree(own.dir, keep, dirs_exist_ok=True)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


async def test_the_status_lists_each_node(cluster: Settings) -> None:
    lines = [str(st) for st in services.status(cluster) if st.name == "cassandra"]
    assert len(lines) == 3 and all("running (started by hub" in line for line in lines), lines
    assert [h for h in HOSTS if any(f"{h}:9042" in line for line in lines)] == list(HOSTS)


async def test_a_post_through_one_gateway_reaches_a_socket_on_the_other(
    cluster: Settings, hubs: tuple[OwnHub, OwnHub],
) -> None:
    a, b = hubs
    alice, bob = uid("alice"), uid("bob")
    async with aiohttp.ClientSession() as session:
        client = AppClient(session, a, cluster.apps[APP])
        for _ in range(10):  # as an app does: a 503 (a busy node on this loaded machine) is retried
            status, answer = await client.call("PUT", "/follows", {"follower": bob, "followee": alice})
            if status != 503:
                break
            await asyncio.sleep(1)
        assert status == 204, answer
        async with session.ws_connect(f"{b.url}/v1/realtime?token={token(cluster, bob)}") as ws:
            await ws.send_json({"op": "subscribe", "feed": f"timeline:{bob}"})
            frame = await next_frame(ws, 15)
            assert frame["op"] == "subscribed", frame
            aid = await client.post({"actor": alice, "verb": "post", "object": "note:1", "foreign_id": uid("gw")},
                                    time.monotonic() + 30)
            assert aid is not None, client.stats.refusals
            deadline = time.monotonic() + 20
            while frame["op"] != "entry":
                frame = await next_frame(ws, deadline - time.monotonic())
            assert frame["feed"] == f"timeline:{bob}" and frame["entry"]["id"] == aid, frame


def windows(s: Stats, killed_at: float) -> list[tuple[float, float]]:
    """Median and longest time to answer of the posts started before the kill (the last
    ``BEFORE_KILL`` seconds) and in each 3 s after it."""
    edges = [killed_at - BEFORE_KILL, *(killed_at + 3 * i for i in range(int(DOWN // 3) + 1))]
    took = [s.durations(a, b, first=True) for a, b in zip(edges, edges[1:])]
    return [(round(d[len(d) // 2], 2), round(d[-1], 2)) for d in took if d]


async def next_frame(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> dict[str, Any]:
    msg = await ws.receive(timeout=max(0.1, timeout))
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    frame: dict[str, Any] = json.loads(msg.data)
    return frame


async def test_one_node_killed_under_a_post_stream_then_back_and_feeds_rebuilt(
    cluster: Settings, hubs: tuple[OwnHub, OwnHub],
) -> None:
    own = hubs[0]
    async with aiohttp.ClientSession() as session:
        client = Client(session, own, cluster.apps[APP])
        authors = [uid("author") for _ in range(AUTHORS)]
        followers = [uid("fan") for _ in range(FOLLOWERS)]
        for f in followers:
            for au in authors:
                status, answer = await client.call("PUT", "/follows", {"follower": f, "followee": au})
                assert status == 204, answer
            for group in ("timeline", "timeline_aggregated"):
                assert await client.feed_ids(group, f) == []  # now cached (and empty)

        stop = asyncio.Event()
        stream = asyncio.create_task(post_stream(client, authors, RATE, stop, uid("kill"), time.monotonic() + 90))
        await asyncio.sleep(BEFORE_KILL)
        victim = node_instance(VICTIM, cluster.cassandra.port, cluster.services.state_dir)
        assert victim is not None
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        victim.stop()  # reaps it (nothing is signalled: it is dead) and removes its pid file
        await asyncio.sleep(DOWN)
        stop.set()
        await stream

        s = client.stats
        killed = [(round(t - killed_at, 1), round(d, 2)) for t, d, _, n in s.attempts if n == 1 and t >= killed_at]
        slowest = sorted(killed, key=lambda x: -x[1])[:5]
        print(f"{s.posts} posts, {len(s.accepted)} accepted, {s.retries} retries {s.refusals}; after the kill: "
              f"{s.latencies(killed_at, first=True)}; slowest (s after the kill, s taken): {slowest}; p50 / max "
              f"(s) before the kill and in 3 s windows after it: {windows(s, killed_at)}")
        # Quorum (2 of 3) holds with one node down: every post is answered 202 at its
        # first try, before gossip has convicted the dead node as after.
        assert s.refusals == {} and s.retries == 0, (s.refusals, getattr(client, "refused", [])[:3])
        assert len(s.accepted) == s.posts
        expected = set(s.accepted.values())
        missing, took = await wait_complete(client, followers, expected, timeout=60)
        assert not missing, f"{len(set().union(*missing.values()))} of {len(expected)} missing with a node down"
        print(f"fan-out complete {took:.1f} s after the stream, one node down")

        t = time.monotonic()
        restarted = await asyncio.to_thread(services.start, cluster, quiet)  # what `hub services start` does
        assert [svc.address for svc in restarted] == [f"{VICTIM}:{cluster.cassandra.port}"]
        print(f"{VICTIM} answers again after {time.monotonic() - t:.1f} s")

        # Every feed of this module rebuilt from Cassandra: the Redis keys deleted.
        r = redis_storage.connect(cluster.redis)
        try:
            keys = [k async for k in r.scan_iter(match=f"{cluster.redis.key_prefix}:*", count=1000)]
            for i in range(0, len(keys), 500):
                await r.delete(*keys[i:i + 500])
        finally:
            await r.aclose()
        missing, _ = await wait_complete(client, followers, expected, timeout=0)
        assert not missing, f"rebuilt timelines lack {len(set().union(*missing.values()))} of {len(expected)}"
        short = await wait_aggregated(client, followers, len(expected), timeout=0)
        assert not short, f"rebuilt timeline_aggregated counts {short}, not {len(expected)}"
        for command in ("serve", "worker"):
            assert own.running(command), own.log(command)[-3000:]
