"""A local Cassandra 2.1 for development and tests, run with ``java`` directly.

The stock ``bin/cassandra`` script passes CMS/ParNew flags that Java 17 rejects, so the
daemon is started by hand with G1 and every ``java.base`` package opened.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub.services.cassandra_dist import ensure_cassandra_tree, ensure_java, write_add_opens
from hub.services.process import (
    ManagedService,
    Progress,
    ServiceError,
    ServiceStatus,
    bind_address,
    discard,
    exchange,
    find_instance,
    is_local_host,
    port_free,
    running_pid,
    service_status,
    spawn_detached,
    tcp_open,
    wait_until,
)

NAME = "cassandra"
MARKER = "org.apache.cassandra.service.CassandraDaemon"
START_TIMEOUT = 90.0
STOP_GRACE = 30.0
# Cassandra 2.1's shared request pool keeps idle workers "spinning": parked 10 us to 1 ms
# at a time, so that one is always about to wake. With Linux's default 50 us timer slack
# that was 64,000 wake-ups a second under the intake bench, and about 40 % of the node's
# CPU. A 1 ms slack lets each park run to its natural length, and the node used 43 % of a
# core instead of 75 % for more requests (docs/benchmarks.md, Intake). The price: a task
# that finds a worker spinning is left to it, so on an idle node a lone read waits for
# that worker's park (2.3 ms instead of 1.3 ms for a one-row SELECT). Override with
# HUB_CASSANDRA_TIMER_SLACK_NS (0 keeps the system default).
TIMER_SLACK_NS = 1_000_000
# The commit-log sync interval in batch mode; 2.1 reads it as whole milliseconds.
COMMIT_WINDOW_MS = 1
# OPTIONS in protocol v3: version 3, no flags, stream 0, opcode 5, empty body.
_CQL_OPTIONS = bytes([0x03, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00])

_LOGBACK = """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level %date{HH:mm:ss,SSS} [%thread] %logger{0} %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT" /></root>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
</configuration>
"""


def timer_slack_ns() -> int:
    raw = os.environ.get("HUB_CASSANDRA_TIMER_SLACK_NS", str(TIMER_SLACK_NS))
    if not raw.isdigit():
        raise ServiceError(f"HUB_CASSANDRA_TIMER_SLACK_NS must be nanoseconds (0 or more), not {raw!r}")
    return int(raw)


def commit_log_keeps_default_slack(pid: int) -> bool:
    """Give the commit-log threads back this process's own (default) timer slack.

    The writer syncs on a timer every ``commitlog_sync_batch_window_in_ms``, and every
    acknowledged write waits for a sync: with the 1 ms slack its 1 ms window would
    stretch towards 2 ms, which each write of a batch would pay again. Setting another
    process's slack needs CAP_SYS_NICE; without it (False) the node runs, a little slower.
    """
    if not timer_slack_ns():
        return True
    try:
        default = Path("/proc/self/timerslack_ns").read_text().strip()
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            if (task / "comm").read_text().startswith("COMMIT-LOG"):
                Path(f"/proc/{task.name}/timerslack_ns").write_text(default)
        except FileNotFoundError:
            continue  # a thread that exited since the listing: nothing to reset
        except OSError:
            return False
    return True


def instance_dir(state_dir: Path, port: int) -> Path:
    return Path(state_dir) / f"cassandra-{port}"


def storage_ports(native_port: int) -> tuple[int, int]:
    """Gossip ports derived from the native port, so instances on different ports don't collide.

    9042 maps to Cassandra's own defaults (7000, 7001). The SSL port is only bound with
    internode encryption, which stays off, so its overlap with a neighbour's is harmless.
    """
    base = native_port - 2042 if native_port - 2042 >= 1024 else native_port + 2042
    return base, base + 1


def cql_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a CQL server replies to OPTIONS (any protocol version, even with an error)."""
    reply = exchange(host, port, _CQL_OPTIONS, timeout=timeout, want=5)
    return len(reply) >= 5 and reply[0] & 0x80 != 0 and 1 <= reply[0] & 0x7F <= 5


def release_version(host: str, port: int, timeout: float = 5.0) -> str | None:
    """``release_version`` from system.local over a real driver session, or None if that fails."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=timeout)
    cluster = Cluster([host], port=port, protocol_version=3, connect_timeout=timeout,
                      control_connection_timeout=timeout, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    # A node still starting makes the driver log connection errors that mean nothing here.
    driver_log = logging.getLogger("cassandra")
    level = driver_log.level
    driver_log.setLevel(logging.CRITICAL)
    try:
        row = cluster.connect().execute("SELECT release_version FROM system.local").one()
        return str(row.release_version) if row is not None else None
    except Exception:
        return None
    finally:
        cluster.shutdown()
        driver_log.setLevel(level)


def write_config(tree: Path, idir: Path, host: str, port: int, overrides: Mapping[str, Any] | None = None) -> Path:
    """The tarball's cassandra.json with our changes (then ``overrides``, for a cluster's
    node), as ``<instance>/cassandra.yaml`` (JSON is YAML)."""
    config = json.loads((tree.parent / "cassandra.json").read_text())
    ip = bind_address(host)
    storage, ssl_storage = storage_ports(port)
    config.update({
        "cluster_name": "hub",
        "listen_address": ip,
        "rpc_address": ip,
        "seed_provider": [{"class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                           "parameters": [{"seeds": ip}]}],
        "native_transport_port": port,
        "storage_port": storage,
        "ssl_storage_port": ssl_storage,
        "start_native_transport": True,
        "start_rpc": False,
        "num_tokens": 16,
        "data_file_directories": [str(idir / "data")],
        "commitlog_directory": str(idir / "commitlog"),
        "saved_caches_directory": str(idir / "saved_caches"),
        # Acknowledged writes survive kill -9 with batch sync; periodic (10 s) loses them.
        # 2.1's writer syncs on this timer (a write does not wake it), and each partition
        # of a batch waits for a sync of its own: 1 ms, the least it takes, cut the
        # intake's Cassandra round by a sixth (docs/benchmarks.md).
        "commitlog_sync": "batch",
        "commitlog_sync_batch_window_in_ms": COMMIT_WINDOW_MS,
        # Tests drop and truncate often; a snapshot each time would only fill the disk.
        "auto_snapshot": False,
    })
    config.update(overrides or {})
    # 2.1 refuses to start with a periodic setting next to batch sync.
    config.pop("commitlog_sync_period_in_ms", None)
    for sub in ("data", "commitlog", "saved_caches"):
        (idir / sub).mkdir(parents=True, exist_ok=True)
    path = idir / "cassandra.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def java_argv(java: str, tree: Path, idir: Path, heap_mb: int) -> list[str]:
    lib = tree / "lib"
    classpath = ":".join([str(tree / "conf"), *sorted(str(j) for j in lib.glob("*.jar"))])
    argfile = write_add_opens(java, idir / "jvm-add-opens.args")
    (idir / "logback.xml").write_text(_LOGBACK)
    return [
        java, f"@{argfile}",
        f"-Xms{heap_mb}m", f"-Xmx{heap_mb}m", "-Xss256k", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=10",
        f"-javaagent:{lib / 'jamm-0.2.6.jar'}",
        # GC pauses, to read beside a latency tail (three files of at most 5 MB).
        f"-Xlog:gc:file={idir / 'gc.log'}:uptime:filecount=3,filesize=5m",
        "-Djava.net.preferIPv4Stack=true",
        # No com.sun.management.jmxremote.port: JMX stays off rather than listening on 0.0.0.0.
        f"-Dcassandra.config=file://{idir / 'cassandra.yaml'}",
        f"-Dlogback.configurationFile={idir / 'logback.xml'}",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.storagedir={idir}",
        "-cp", classpath,
        MARKER,
    ]


def start_cassandra(
    host: str, port: int, state_dir: Path, cache_dir: Path, heap_mb: int = 512, progress: Progress = print,
    idir: Path | None = None, overrides: Mapping[str, Any] | None = None,
) -> ManagedService | None:
    """Start Cassandra 2.1 on host:port unless a CQL server already answers there (then None).

    ``idir`` and ``overrides`` are for a node of a local cluster (its own directory, its
    seeds and cluster settings); by default the instance lives in ``cassandra-<port>``."""
    address = f"{host}:{port}"
    if cql_answers(host, port):
        progress(f"Cassandra already answers at {address}")
        return None
    if not is_local_host(host):
        raise ServiceError(f"Cassandra at {address} does not answer, and the hub only starts servers on this machine (127.0.0.1)")
    idir = (idir or instance_dir(state_dir, port)).resolve()
    pid_file, log_path = idir / "cassandra.pid", idir / "cassandra.log"

    def ready() -> bool:
        # The cheap probe first: a driver session per poll would be slow while the port is still closed.
        return cql_answers(host, port) and release_version(host, port) is not None

    pid = running_pid(pid_file, MARKER)
    if pid is not None:
        progress(f"Cassandra (pid {pid}) is starting; waiting for it (log: {log_path})")
        wait_until(ready, what=f"Cassandra on {address}", timeout=START_TIMEOUT, proc=None, log_path=log_path)
        return None
    if tcp_open(host, port):
        raise ServiceError(f"cannot start Cassandra on {address}: the port is taken by something that does not speak CQL")
    storage, _ = storage_ports(port)
    if not port_free(bind_address(host), storage):
        raise ServiceError(f"cannot start Cassandra on {address}: its storage port {storage} is taken")
    java = ensure_java(progress)
    tree = ensure_cassandra_tree(cache_dir, progress)
    idir.mkdir(parents=True, exist_ok=True)
    write_config(tree, idir, host, port, overrides)
    argv = java_argv(java, tree, idir, heap_mb)
    progress(f"starting Cassandra 2.1 on {address} (log: {log_path})")
    proc = spawn_detached(argv, log_path, idir, pid_file, timer_slack_ns=timer_slack_ns())
    try:
        took = wait_until(ready, what=f"Cassandra on {address}", timeout=START_TIMEOUT, proc=proc,
                          log_path=log_path, interval=0.5)
    except BaseException:
        discard(proc, pid_file)
        raise
    progress(f"Cassandra on {address} answers after {took:.1f} s")
    if not commit_log_keeps_default_slack(proc.pid):
        progress("note: the commit-log writer runs with the 1 ms timer slack too (resetting it needs CAP_SYS_NICE)")
    return ManagedService(NAME, proc.pid, address, log_path, pid_file, MARKER, STOP_GRACE, proc)


def cassandra_instance(port: int, state_dir: Path, host: str = "127.0.0.1") -> ManagedService | None:
    """The hub-started Cassandra for ``port`` under ``state_dir``, if it runs."""
    return find_instance(NAME, MARKER, STOP_GRACE, instance_dir(state_dir, port).resolve(), f"{host}:{port}")


def cassandra_status(host: str, port: int, state_dir: Path) -> ServiceStatus:
    mine = cassandra_instance(port, state_dir, host) if is_local_host(host) else None
    return service_status(NAME, f"{host}:{port}", cql_answers(host, port), mine)
