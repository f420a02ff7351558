"""A local Redis Cluster and the queue Redis: every Redis the configuration names.

``[redis] cluster = true`` with a loopback url names a local cluster of six nodes on
consecutive ports from the url's (three primaries, three replicas; each node's cluster
bus on its port + 10000). Each node lives in its own directory under the state dir
(``redis-<port>``, as a single Redis does), where it keeps its ``nodes.conf``.
``[queue] url`` naming another loopback Redis is started as a single Redis.

Guarantees: :func:`start_redises` starts every configured Redis that does not answer and
returns once all answer and the cluster says ``cluster_state:ok`` on every node. So it
starts a new cluster (the nodes, then ``redis-cli --cluster create``) and also restarts
one killed node of a running cluster: the node comes back with its ``nodes.conf`` and
rejoins (as a replica if its replica took over meanwhile). Nothing is persisted (a cache).
"""

from __future__ import annotations

import subprocess
import time
from urllib.parse import urlparse

import redis

from hub.config import Settings
from hub.services.process import ManagedService, Progress, ServiceError, ServiceStatus, is_local_host
from hub.services.redis_local import NAME, redis_answers, redis_instance, redis_status, start_redis

NODES = 6  # three primaries, three replicas
NODE_TIMEOUT_MS = 5000  # a primary is failed over about 8 s after it stops (docs/scaling.md)
FORM_TIMEOUT = 30.0
NODE_OPTIONS = (
    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
)


def local_cluster(settings: Settings) -> list[tuple[str, int]] | None:
    """The nodes of the local cluster that ``hub services`` runs, or None (no cluster, or
    the url is not on this machine: then the hub only connects to it)."""
    r = settings.redis
    if not r.cluster or not is_local_host(r.host):
        return None
    return [(r.host, r.port + i) for i in range(NODES)]


def queue_redis(settings: Settings) -> tuple[str, int] | None:
    """The queue Redis the hub runs locally: ``[queue] url`` on a loopback address, when
    it is not the main Redis (a Sentinel-managed queue is the operator's)."""
    if not settings.queue_apart or settings.queue.sentinel is not None:
        return None
    u = urlparse(settings.queue_url)
    if u.scheme not in ("redis", "rediss") or not is_local_host(u.hostname or ""):
        return None
    return u.hostname or "127.0.0.1", u.port or 6379


def configured(settings: Settings) -> list[tuple[str, int]]:
    """Every Redis address the configuration names, the main one(s) first."""
    main = local_cluster(settings) or [(settings.redis.host, settings.redis.port)]
    q = queue_redis(settings)
    return main + ([q] if q is not None and q not in main else [])


def start_redises(settings: Settings, progress: Progress = print) -> list[ManagedService]:
    """Start every configured Redis that does not answer; return those started here."""
    sd = settings.services.state_dir
    started: list[ManagedService] = []
    nodes = local_cluster(settings)
    if nodes is None:
        started += _listed(start_redis(settings.redis.host, settings.redis.port, sd, progress))
    else:
        for host, port in nodes:
            started += _listed(start_redis(host, port, sd, progress, extra=NODE_OPTIONS, what="Redis Cluster node"))
        _form(nodes, progress)
    q = queue_redis(settings)
    if q is not None:
        started += _listed(start_redis(q[0], q[1], sd, progress, what="queue Redis"))
    return started


def _listed(service: ManagedService | None) -> list[ManagedService]:
    return [] if service is None else [service]


def cluster_info(host: str, port: int) -> dict[str, str]:
    """``CLUSTER INFO`` of one node ({} if it does not answer)."""
    try:
        with redis.Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=1) as r:
            raw = r.execute_command("CLUSTER INFO")
    except redis.RedisError:
        return {}
    text = raw.decode() if isinstance(raw, bytes) else raw
    if isinstance(text, dict):
        return {str(k): str(v) for k, v in text.items()}
    return dict(line.split(":", 1) for line in str(text).splitlines() if ":" in line)


def _replicating(host: str, port: int) -> bool:
    """True when the node is a replica whose link to its primary is up (a failover can
    then promote it)."""
    try:
        with redis.Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=1, decode_responses=True) as r:
            info = r.info("replication")
    except redis.RedisError:
        return False
    return bool(info.get("role") == "slave" and info.get("master_link_status") == "up")


def _form(nodes: list[tuple[str, int]], progress: Progress) -> None:
    """Create the cluster if no node knows another yet; then wait until every node says ok
    and every replica is linked to its primary."""
    infos = [cluster_info(h, p) for h, p in nodes]
    if all(i.get("cluster_known_nodes") == "1" and i.get("cluster_slots_assigned") == "0" for i in infos):
        progress(f"creating the Redis Cluster on {nodes[0][0]}:{nodes[0][1]}-{nodes[-1][1]}")
        argv = ["redis-cli", "--cluster", "create", *(f"{h}:{p}" for h, p in nodes),
                "--cluster-replicas", "1", "--cluster-yes"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise ServiceError(f"redis-cli --cluster create failed: {(done.stdout + done.stderr).strip()[-300:]}")
    started = time.monotonic()
    while True:
        infos = [cluster_info(h, p) for h, p in nodes]
        if all(i.get("cluster_state") == "ok" and i.get("cluster_known_nodes") == str(len(nodes)) for i in infos) \
                and sum(_replicating(h, p) for h, p in nodes) == len(nodes) // 2:
            progress(f"Redis Cluster ok on {len(nodes)} nodes after {time.monotonic() - started:.1f} s")
            return
        if time.monotonic() - started > FORM_TIMEOUT:
            states = ", ".join(f"{p}: {i.get('cluster_state', 'no answer')}" for (_, p), i in zip(nodes, infos))
            raise ServiceError(f"the Redis Cluster is not ok after {FORM_TIMEOUT:.0f} s ({states})")
        time.sleep(0.2)


def stop_redises(settings: Settings, progress: Progress = print) -> list[str]:
    """Stop every hub-started Redis of the configuration; return "redis" once if any was."""
    sd = settings.services.state_dir
    stopped = False
    for host, port in configured(settings):
        service = redis_instance(port, sd, host) if is_local_host(host) else None
        if service is not None:
            progress(f"stopping {service.name} on {service.address} (pid {service.pid})...")
            service.stop()
            stopped = True
        elif redis_answers(host, port):
            progress(f"redis at {host}:{port} was not started by the hub; left running")
        else:
            progress(f"redis at {host}:{port} is not running")
    return [NAME] if stopped else []


def redises_status(settings: Settings) -> list[ServiceStatus]:
    """One line per configured Redis (each node of a local cluster, the queue Redis)."""
    return [redis_status(h, p, settings.services.state_dir) for h, p in configured(settings)]

