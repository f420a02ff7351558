"""Shared machinery for the local services: detached spawn, pid files, probes, waiting, stopping.

A service started by the hub lives in its own directory under the state dir and is
identified by a pid file there. Nothing is kept in memory between commands, so
``hub services stop`` in a new process finds what ``hub up`` started.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Progress = Callable[[str], None]


class ServiceError(Exception):
    """A service could not be installed, started or reached. ``str()`` is the one line to show."""


def is_local_host(host: str) -> bool:
    """True for addresses a child process of ours can listen on (loopback only, on purpose)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_address(host: str) -> str:
    # Servers are handed an IP: "localhost" may resolve to ::1 first, which the clients don't expect.
    return "127.0.0.1" if host == "localhost" else host


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    """True if we could listen on host:port ourselves right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def exchange(host: str, port: int, payload: bytes, timeout: float = 1.0, want: int = 1) -> bytes:
    """Send ``payload`` and return what came back (at least ``want`` bytes, or b"" on any failure)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(payload)
            data = b""
            while len(data) < want:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data
    except OSError:
        return b""


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int, marker: str) -> bool:
    """True if ``pid`` runs and its command line contains ``marker`` (guards against pid reuse)."""
    try:
        # Reap it if it is our own exited child, or it would linger as a zombie that looks alive.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and marker in cmdline


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The pid from ``pid_file`` if that process still runs; a stale pid file is removed."""
    pid = read_pid(pid_file)
    if pid is not None and pid_alive(pid, marker):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def tail(path: Path, lines: int = 5) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())


def spawn_detached(
    argv: Sequence[str], log_path: Path, cwd: Path, pid_file: Path, *, timer_slack_ns: int | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (so Ctrl-C on ``hub`` does not reach it), logging to ``log_path``.

    ``timer_slack_ns``: the Linux timer slack the process and all its threads start with
    (inherited from the thread that forks it, and kept across exec).
    """
    with log_path.open("wb") as log, _timer_slack(timer_slack_ns):
        try:
            proc = subprocess.Popen(
                list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        except OSError as e:
            raise ServiceError(f"could not run {argv[0]}: {e.strerror}") from None
    pid_file.write_text(f"{proc.pid}\n")
    return proc


_PR_SET_TIMERSLACK = 29  # linux/prctl.h


@contextlib.contextmanager
def _timer_slack(ns: int | None) -> Iterator[None]:
    """Set this thread's timer slack while a child is forked (0 restores the default).

    Per thread, so it is safe beside the other threads of ``hub services start``; where
    prctl is missing (not Linux) the child keeps the default.
    """
    prctl = _prctl() if ns else None
    if prctl is None:
        yield
        return
    prctl(_PR_SET_TIMERSLACK, ns, 0, 0, 0)
    try:
        yield
    finally:
        prctl(_PR_SET_TIMERSLACK, 0, 0, 0, 0)


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl


def wait_until(
    ready: Callable[[], bool], *, what: str, timeout: float, proc: subprocess.Popen[bytes] | None,
    log_path: Path, interval: float = 0.2,
) -> float:
    """Poll ``ready`` until it holds; fail at once if ``proc`` exits. Returns the seconds waited."""
    start = time.monotonic()
    while True:
        if ready():
            return time.monotonic() - start
        if proc is not None and proc.poll() is not None:
            raise ServiceError(
                f"{what} exited with code {proc.returncode} during start-up (log: {log_path}): {tail(log_path)}"
            )
        if time.monotonic() - start > timeout:
            raise ServiceError(f"{what} did not answer within {timeout:.0f} s (log: {log_path}): {tail(log_path)}")
        time.sleep(interval)


def discard(proc: subprocess.Popen[bytes], pid_file: Path) -> None:
    """Kill a child whose start-up failed, so a half-started server does not linger."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    pid_file.unlink(missing_ok=True)


def stop_pid(pid: int, marker: str, grace: float) -> None:
    """SIGTERM the process, then SIGKILL it if it outlives ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid, marker):
                return
            time.sleep(0.1)
    raise ServiceError(f"process {pid} ({marker}) survived SIGKILL")


def apt_install(packages: Sequence[str], progress: Progress) -> None:
    """Install Debian packages; ``apt-get update`` runs only if the first attempt fails."""
    if shutil.which("apt-get") is None:
        raise ServiceError(f"{' '.join(packages)} missing and there is no apt-get to install it; install it yourself")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Waits for a dpkg lock held by someone else instead of failing at once.
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", *packages]
    progress(f"installing {' '.join(packages)} with apt...")
    result = subprocess.run(install, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        progress("apt-get install failed; running apt-get update and trying again...")
        update = subprocess.run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"],
                                env=env, capture_output=True, text=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True) if update.returncode == 0 else update
    if result.returncode != 0:
        lines = [ln for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
        reason = lines[-1].strip() if lines else f"exit code {result.returncode}"
        raise ServiceError(f"could not install {' '.join(packages)} with apt-get: {reason}")


@dataclass
class ManagedService:
    """A server the hub started: enough to report on it and to stop it."""

    name: str
    pid: int
    address: str
    log_path: Path
    pid_file: Path
    marker: str
    grace: float
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def stop(self) -> None:
        stop_pid(self.pid, self.marker, self.grace)
        if self._proc is not None:
            self._proc.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # "running" (started by the hub), "answering" (someone else's) or "stopped"
    address: str
    pid: int | None = None
    log_path: Path | None = None
    answers: bool = False

    def __str__(self) -> str:
        if self.state == "running":
            what = f"running (started by hub, pid {self.pid}{'' if self.answers else ', not answering yet'})"
        elif self.state == "answering":
            what = "answering (external)"
        else:
            what = "stopped"
        log = f"  log: {self.log_path}" if self.log_path else ""
        return f"{self.name:<10} {what:<40} {self.address}{log}"


def find_instance(name: str, marker: str, grace: float, idir: Path, address: str) -> ManagedService | None:
    """The server the hub started in ``idir`` (``<name>.pid``, ``<name>.log``), if it runs."""
    pid = running_pid(idir / f"{name}.pid", marker)
    if pid is None:
        return None
    return ManagedService(name, pid, address, idir / f"{name}.log", idir / f"{name}.pid", marker, grace)


def service_status(name: str, address: str, answers: bool, mine: ManagedService | None) -> ServiceStatus:
    if mine is not None:
        return ServiceStatus(name, "running", address, mine.pid, mine.log_path, answers)
    return ServiceStatus(name, "answering" if answers else "stopped", address, answers=answers)
