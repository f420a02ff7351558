"""A local Redis for development and tests: Debian's ``redis-server`` as a detached child."""

from __future__ import annotations

import shutil
from pathlib import Path

from hub.services.process import (
    ManagedService,
    Progress,
    ServiceError,
    ServiceStatus,
    apt_install,
    bind_address,
    discard,
    exchange,
    find_instance,
    is_local_host,
    running_pid,
    service_status,
    spawn_detached,
    tcp_open,
    wait_until,
)

NAME = "redis"
MARKER = "redis-server"
START_TIMEOUT = 10.0
STOP_GRACE = 10.0

# What the hub needs of every Redis it starts (docs/scaling.md, Redis):
# - noeviction: Redis is a cache, but the job queues, the kept webhook answers and the
#   pending claims must not vanish under memory pressure (an evicted answer would not be
#   noticed, docs/design.md); a full Redis refuses writes instead (OOM: a 503, retried).
# - a feed of up to 1,000 entries (and a few more while it is trimmed) stays a listpack:
#   33 bytes an entry instead of 118 in a skiplist (measured, 26-character ids); the
#   hashes of an aggregated feed (one field per group) likewise.
SETTINGS = (
    "--maxmemory-policy", "noeviction",
    "--zset-max-listpack-entries", "1100",
    "--hash-max-listpack-entries", "1100",
)


def instance_dir(state_dir: Path, port: int) -> Path:
    return Path(state_dir) / f"redis-{port}"


def redis_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a Redis server replies to PING (a password-protected one counts too)."""
    reply = exchange(host, port, b"*1\r\n$4\r\nPING\r\n", timeout=timeout, want=5)
    return reply.startswith((b"+PONG", b"-NOAUTH", b"-WRONGPASS"))


def ensure_redis_server(progress: Progress) -> str:
    """The path of ``redis-server``, installing the Debian package first if needed."""
    path = shutil.which("redis-server")
    if path is None:
        try:
            apt_install(["redis-server"], progress)
        except ServiceError as e:
            raise ServiceError(f"redis-server is not installed: {e}") from None
        path = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if path is None:
        raise ServiceError("redis-server is still not on PATH after installing the redis-server package")
    return path


def start_redis(host: str, port: int, state_dir: Path, progress: Progress = print, *,
                extra: tuple[str, ...] = (), what: str = "Redis") -> ManagedService | None:
    """Start Redis on host:port unless something already answers there (then return None).
    ``extra``: more redis-server options (a cluster node's); ``what``: its name in messages."""
    address = f"{host}:{port}"
    if redis_answers(host, port):
        progress(f"Redis already answers at {address}")
        return None
    if not is_local_host(host):
        raise ServiceError(f"Redis at {address} does not answer, and the hub only starts servers on this machine (127.0.0.1)")
    idir = instance_dir(state_dir, port).resolve()
    pid_file, log_path = idir / "redis.pid", idir / "redis.log"
    pid = running_pid(pid_file, MARKER)
    if pid is not None:
        # Ours and alive but not answering yet: probably another `hub` command starting it right now.
        progress(f"Redis (pid {pid}) is starting; waiting for it (log: {log_path})")
        wait_until(lambda: redis_answers(host, port), what=f"Redis on {address}", timeout=START_TIMEOUT,
                   proc=None, log_path=log_path)
        return None
    if tcp_open(host, port):
        raise ServiceError(f"cannot start Redis on {address}: the port is taken by something that is not Redis (no reply to PING)")
    binary = ensure_redis_server(progress)
    idir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary, "--bind", bind_address(host), "--port", str(port), "--dir", str(idir),
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "", *SETTINGS, *extra,
    ]
    progress(f"starting {what} on {address} (log: {log_path})")
    proc = spawn_detached(argv, log_path, idir, pid_file)
    try:
        took = wait_until(lambda: redis_answers(host, port), what=f"Redis on {address}", timeout=START_TIMEOUT,
                          proc=proc, log_path=log_path)
    except BaseException:
        discard(proc, pid_file)
        raise
    progress(f"Redis answers after {took:.1f} s")
    return ManagedService(NAME, proc.pid, address, log_path, pid_file, MARKER, STOP_GRACE, proc)


def redis_instance(port: int, state_dir: Path, host: str = "127.0.0.1") -> ManagedService | None:
    """The hub-started Redis for ``port`` under ``state_dir``, if it runs."""
    return find_instance(NAME, MARKER, STOP_GRACE, instance_dir(state_dir, port).resolve(), f"{host}:{port}")


def redis_status(host: str, port: int, state_dir: Path) -> ServiceStatus:
    mine = redis_instance(port, state_dir, host) if is_local_host(host) else None
    return service_status(NAME, f"{host}:{port}", redis_answers(host, port), mine)
