"""``hub bench SCENARIO [--quick]``: the benchmarks of docs/benchmarks.md."""

from __future__ import annotations

import secrets
import sys
from typing import Any

from bench.common import run
from hub.config import Settings
from hub.errors import HubError


def run_bench(settings: Settings, scenario: str, *, quick: bool = False, config: str | None = None,
              soak: dict[str, Any] | None = None) -> int:
    """Run one scenario against its own keyspace and key prefix; print its figures.

    ``soak``: the soak scenario's options (bench/soak.py's SoakOptions fields); None for
    its defaults."""
    from bench.common import bench_settings, worker_count

    run_id = secrets.token_hex(4)
    s = bench_settings(settings, run_id, worker_processes=worker_count())
    result: Any
    try:
        if scenario == "fanout":
            from bench.fanout import run_fanout

            result = run(run_fanout(s, quick=quick))
        elif scenario == "intake":
            from bench.intake import latency_runs, run_intake, run_latency

            n = latency_runs()
            result = run(run_latency(s, n)) if n > 0 else run(run_intake(s, quick=quick))
        elif scenario == "read":
            from bench.read import run_read

            result = run(run_read(s, quick=quick))
        elif scenario == "soak":
            from bench.soak import SoakOptions, run_soak

            result = run(run_soak(s, SoakOptions(**{k: v for k, v in (soak or {}).items() if v is not None})))
        elif scenario == "push":
            from bench.push import run_push

            result = run(run_push(s, quick=quick))
        else:
            print(f"hub: unknown benchmark {scenario!r}", file=sys.stderr)
            return 2
    except (RuntimeError, HubError, OSError) as e:
        print(f"hub bench {scenario}: {e}", file=sys.stderr)
        return 1
    print(result.report(), flush=True)
    return 0
