"""``hub bench SCENARIO [--quick]``: the benchmarks of docs/benchmarks.md."""

from __future__ import annotations

import secrets
import sys
from typing import Any

from bench.common import run
from hub.config import Settings
from hub.errors import HubError


def run_bench(settings: Settings, scenario: str, *, quick: bool = False, config: str | None = None,
              soak: dict[str, Any] | None = None, cluster: str | None = None) -> int:
    """Run one scenario against its own keyspace and key prefix; print its figures.

    ``cluster``: another configuration file (config.cluster.toml): intake and fanout then
    run again on it, and the two runs' figures are printed side by side.

    ``soak``: the soak scenario's options (bench/soak.py's SoakOptions fields); None for
    its defaults."""
    from bench.common import bench_settings, worker_count

    run_id = secrets.token_hex(4)
    s = bench_settings(settings, run_id, worker_processes=worker_count())
    if scenario not in SCENARIOS:
        print(f"hub: unknown benchmark {scenario!r}", file=sys.stderr)
        return 2
    if cluster is not None and scenario not in ("intake", "fanout"):
        print(f"hub bench {scenario}: --cluster is for intake and fanout", file=sys.stderr)
        return 2
    try:
        result = _run_one(s, scenario, quick, soak)
        print(result.report(), flush=True)
        if cluster is not None:
            from bench.cluster import compare
            from hub.config import load_settings

            cs = bench_settings(load_settings(cluster), run_id + "c", worker_processes=worker_count())
            on_cluster = _run_one(cs, scenario, quick, soak)
            print(f"\n--- the same run on {cluster} ---", flush=True)
            print(on_cluster.report(), flush=True)
            print(compare(scenario, result, on_cluster, cs), flush=True)
    except (RuntimeError, HubError, OSError) as e:
        print(f"hub bench {scenario}: {e}", file=sys.stderr)
        return 1
    return 0


SCENARIOS = ("fanout", "intake", "read", "soak", "push", "inbox", "memory")


def _run_one(s: Settings, scenario: str, quick: bool, soak: dict[str, Any] | None) -> Any:
    if scenario == "fanout":
        from bench.fanout import run_fanout

        return run(run_fanout(s, quick=quick))
    if scenario == "intake":
        from bench.intake import latency_runs, run_intake, run_latency

        n = latency_runs()
        return run(run_latency(s, n)) if n > 0 else run(run_intake(s, quick=quick))
    if scenario == "read":
        from bench.read import run_read

        return run(run_read(s, quick=quick))
    if scenario == "memory":
        from bench.memory import run_memory

        return run(run_memory(s, quick=quick))
    if scenario == "soak":
        from bench.soak import run_soak
        from bench.soak_report import SoakOptions

        return run(run_soak(s, SoakOptions(**{k: v for k, v in (soak or {}).items() if v is not None})))
    if scenario == "inbox":
        from bench.inbox import run_inbox

        return run(run_inbox(s, quick=quick))
    from bench.push import run_push

    return run(run_push(s, quick=quick))
