"""wrk, the load generator of the read and intake benches: found or installed, run, read.

wrk is C, so the load takes little of the 2 cores the hub runs on, and it measures each
request from its send to the end of its answer. The scenarios pass a Lua script that ends
with :data:`DONE_LUA`, which prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from typing import Any

from bench.common import Environment, info

# Lua: the summary as one JSON line (latencies in microseconds).
DONE_LUA = """done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "p50": %d, "p99": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    info("wrk is missing: installing it with apt-get")
    for cmd in (["apt-get", "install", "-y", "wrk"], ["sudo", "-n", "apt-get", "install", "-y", "wrk"]):
        try:
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        except (OSError, subprocess.SubprocessError):
            continue
        if shutil.which("wrk"):
            return str(shutil.which("wrk"))
    raise RuntimeError("wrk is needed for hub bench read and intake: apt-get install -y wrk")


async def run_wrk(env: Environment, argv: list[str]) -> dict[str, Any]:
    """Run wrk to the end; its RESULT line as a dict (requests, duration_us, p50, p99, errors)."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    env.check_alive()
    text = out.decode()
    line = next((x for x in text.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{text}\n{err.decode()}")
    result: dict[str, Any] = json.loads(line[len("RESULT "):])
    return result
