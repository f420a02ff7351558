"""CPU accounting from /proc, to say where the time of a run went (Linux only)."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone or not readable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    try:
        with open("/proc/stat") as f:
            parts = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return (total - idle) / _TICK, total / _TICK


@dataclass
class CpuMeter:
    """CPU used by named processes and by the machine between start() and stop()."""

    pids: dict[str, list[int]]

    def start(self) -> None:
        self._p0 = {name: sum(process_cpu(p) for p in pids) for name, pids in self.pids.items()}
        self._m0 = machine_cpu()

    def stop(self) -> dict[str, float]:
        out = {name: sum(process_cpu(p) for p in pids) - self._p0[name] for name, pids in self.pids.items()}
        busy, total = machine_cpu()
        out["machine busy"] = busy - self._m0[0]
        out["machine total"] = total - self._m0[1]
        return out


def format_cpu(used: dict[str, float], elapsed: float) -> str:
    parts = [f"{name} {sec:.1f}s ({sec / elapsed:.0%} of a core)"
             for name, sec in used.items() if name not in ("machine busy", "machine total")]
    if used.get("machine total"):
        parts.append(f"machine {used['machine busy'] / used['machine total']:.0%} busy")
    return "; ".join(parts)


def rss_kib(pid: int) -> int:
    """The resident memory of process ``pid`` in KiB (0 if /proc does not say)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
