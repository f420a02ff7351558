"""A local Cassandra cluster: one node per configured loopback address, started together.

``[cassandra] hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]`` names three nodes. Each
lives in its own directory under the state dir (``cassandra-<host>-<port>``) and listens
on its own address with the same ports as the others (the addresses differ, so nothing
collides, and 127.0.0.1 stays free for a single-node service).

Guarantees: ``start_cluster`` starts every configured node that does not answer CQL and
returns once all of them answer, so it both starts a new cluster and restarts one killed
node of a running one. The nodes are started at the same time with ``auto_bootstrap:
false``: a node of a new, empty cluster has nothing to stream, and bootstrapping them one
after the other would cost 30 s each for pending ranges. A killed node restarted with its
data keeps its tokens (they are in its system tables), so the flag never moves data.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hub.config import CassandraSettings, ServicesSettings
from hub.services.cassandra_dist import ensure_cassandra_tree, ensure_java
from hub.services.cassandra_local import MARKER, NAME, STOP_GRACE, cql_answers, start_cassandra
from hub.services.process import (
    ManagedService,
    Progress,
    ServiceError,
    ServiceStatus,
    bind_address,
    find_instance,
    is_local_host,
    service_status,
)

CLUSTER_NAME = "hub"
# Under the hub's request timeout ([cassandra] request_timeout, 5 s), so that a read can be tried again.
READ_TIMEOUT_MS = 1000


def is_cluster(c: CassandraSettings) -> bool:
    """True when the configuration names more than one Cassandra host."""
    return len(c.hosts) > 1


def node_dir(state_dir: Path, host: str, port: int) -> Path:
    return (Path(state_dir) / f"cassandra-{bind_address(host)}-{port}").resolve()


def node_overrides(c: CassandraSettings) -> dict[str, Any]:
    """What a node's cassandra.yaml sets beyond the single node's: one cluster, one seed."""
    seed = bind_address(c.hosts[0])
    return {
        "cluster_name": CLUSTER_NAME,
        "seed_provider": [{"class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                           "parameters": [{"seeds": seed}]}],
        "auto_bootstrap": False,
        # One datacenter ("datacenter1"), racks ignored: what loopback nodes are.
        "endpoint_snitch": "SimpleSnitch",
        "num_tokens": 16,
        # A quorum read whose replicas disagree (a row being written) waits for every
        # replica it contacted; until gossip convicts a dead one (10 to 18 s here) that
        # is this timeout (5 s by default), and a post waits behind it. Failed sooner,
        # the read is run again by the hub (hub/storage/retry.py) and succeeds on the
        # live two. docs/scaling.md, One node down.
        "read_request_timeout_in_ms": READ_TIMEOUT_MS,
    }


def start_cluster(c: CassandraSettings, sv: ServicesSettings, progress: Progress = print) -> list[ManagedService]:
    """Start every configured node that does not answer CQL, all at once; wait for all.

    Returns the nodes started here. A node that fails to start does not stop the others:
    they keep running (``hub services stop`` stops them) and the error names it.
    """
    missing = [h for h in c.hosts if not cql_answers(h, c.port)]
    foreign = [h for h in missing if not is_local_host(h)]
    if foreign:
        raise ServiceError(f"Cassandra at {', '.join(foreign)} does not answer, and the hub only starts "
                           "servers on this machine (loopback addresses)")
    if not missing:
        progress(f"Cassandra cluster answers at {', '.join(c.hosts)}")
        return []
    ensure_java(progress)
    ensure_cassandra_tree(sv.cache_dir, progress)
    overrides = node_overrides(c)
    started: list[ManagedService] = []
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=len(missing), thread_name_prefix="hub-cassandra") as pool:
        futures = [
            pool.submit(start_cassandra, h, c.port, sv.state_dir, sv.cache_dir, sv.cassandra_heap_mb, progress,
                        idir=node_dir(sv.state_dir, h, c.port), overrides=overrides)
            for h in missing
        ]
        for future in futures:
            try:
                service = future.result()
            except ServiceError as e:
                errors.append(str(e))
                continue
            if service is not None:
                started.append(service)
    if errors:
        raise ServiceError("; ".join(errors))
    return started


def node_instance(host: str, port: int, state_dir: Path) -> ManagedService | None:
    """The hub-started node for host:port under ``state_dir``, if it runs."""
    return find_instance(NAME, MARKER, STOP_GRACE, node_dir(state_dir, host, port), f"{host}:{port}")


def stop_cluster(c: CassandraSettings, state_dir: Path, progress: Progress = print) -> list[str]:
    """Stop every hub-started node of the cluster; return the addresses stopped."""
    stopped: list[str] = []
    for h in c.hosts:
        node = node_instance(h, c.port, state_dir) if is_local_host(h) else None
        if node is not None:
            progress(f"stopping {NAME} on {node.address} (pid {node.pid})...")
            node.stop()
            stopped.append(node.address)
        elif cql_answers(h, c.port):
            progress(f"cassandra at {h}:{c.port} was not started by the hub; left running")
        else:
            progress(f"cassandra at {h}:{c.port} is not running")
    return stopped


def cluster_status(c: CassandraSettings, state_dir: Path) -> list[ServiceStatus]:
    """One line per configured node."""
    return [
        service_status(NAME, f"{h}:{c.port}", cql_answers(h, c.port),
                       node_instance(h, c.port, state_dir) if is_local_host(h) else None)
        for h in c.hosts
    ]
