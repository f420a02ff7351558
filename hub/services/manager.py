"""``hub services start|stop|status``: both local servers together, driven by the settings."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hub.config import Settings
from hub.services.cassandra_cluster import cluster_status, is_cluster, start_cluster, stop_cluster
from hub.services.cassandra_dist import ensure_cassandra_tree, ensure_java
from hub.services.cassandra_local import cassandra_instance, cassandra_status, cql_answers, start_cassandra
from hub.services.process import ManagedService, Progress, ServiceError, ServiceStatus, is_local_host
from hub.services.redis_cluster import configured, redises_status, start_redises, stop_redises
from hub.services.redis_local import ensure_redis_server, redis_answers, redis_instance

KINDS = ("redis", "cassandra")


def start(settings: Settings, progress: Progress = print) -> list[ManagedService]:
    """Start whichever of Redis and Cassandra does not answer yet; return those started.

    Several Cassandra hosts are a local cluster: every node that does not answer is
    started (hub/services/cassandra_cluster.py), so this also restarts one killed node.
    Likewise every Redis the configuration names: a local Redis Cluster's nodes and the
    queue Redis (hub/services/redis_cluster.py)."""
    c, sv = settings.cassandra, settings.services
    chost = c.hosts[0]
    # Install first, one at a time: two apt-get runs would fight over the dpkg lock.
    if any(is_local_host(h) and not redis_answers(h, p) for h, p in configured(settings)):
        ensure_redis_server(progress)
    if any(is_local_host(h) and not cql_answers(h, c.port) for h in c.hosts):
        ensure_java(progress)
        ensure_cassandra_tree(sv.cache_dir, progress)
    # Then start both at once: Redis is up long before Cassandra, which takes seconds.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="hub-services") as pool:
        futures = [
            pool.submit(start_redises, settings, progress),
            pool.submit(start_cluster, c, sv, progress) if is_cluster(c) else pool.submit(
                _listed, start_cassandra, chost, c.port, sv.state_dir, sv.cache_dir, sv.cassandra_heap_mb, progress),
        ]
        started: list[ManagedService] = []
        errors: list[str] = []
        for future in futures:
            try:
                started.extend(future.result())
            except ServiceError as e:
                errors.append(str(e))
    if errors:
        # What did start keeps running; `hub services stop` stops it.
        raise ServiceError("; ".join(errors))
    return started


def _listed(start_one: Callable[..., ManagedService | None], *args: Any) -> list[ManagedService]:
    service = start_one(*args)
    return [] if service is None else [service]


def stop_instance(kind: str, port: int, state_dir: Path, progress: Progress = print) -> bool:
    """Stop the hub-started ``kind`` ("redis" or "cassandra") on ``port``; False if none runs."""
    if kind == "redis":
        service = redis_instance(port, state_dir)
    elif kind == "cassandra":
        service = cassandra_instance(port, state_dir)
    else:
        raise ValueError(f"unknown service kind {kind!r}; expected one of {', '.join(KINDS)}")
    if service is None:
        return False
    progress(f"stopping {service.name} on port {port} (pid {service.pid})...")
    service.stop()
    return True


def stop(settings: Settings, progress: Progress = print) -> list[str]:
    """Stop what the hub started (Cassandra first); return the names of the services stopped."""
    stopped: list[str] = []
    c, sd = settings.cassandra, settings.services.state_dir
    if is_cluster(c):
        if stop_cluster(c, sd, progress):
            stopped.append("cassandra")
    elif is_local_host(c.hosts[0]) and stop_instance("cassandra", c.port, sd, progress):
        stopped.append("cassandra")
    elif cql_answers(c.hosts[0], c.port):
        progress(f"cassandra at {c.hosts[0]}:{c.port} was not started by the hub; left running")
    else:
        progress(f"cassandra at {c.hosts[0]}:{c.port} is not running")
    return stopped + stop_redises(settings, progress)


def status(settings: Settings) -> list[ServiceStatus]:
    sd, c = settings.services.state_dir, settings.cassandra
    cassandra = cluster_status(c, sd) if is_cluster(c) else [cassandra_status(c.hosts[0], c.port, sd)]
    return [*redises_status(settings), *cassandra]
