"""``hub bench intake|fanout --cluster config.cluster.toml``: a run's figures on a cluster
beside those of the same run on the single node, as ratios (docs/scaling.md).

On one machine the three nodes share the cores with everything else, so the ratio says
what replication costs here, not what a cluster of real machines does.
"""

from __future__ import annotations

from typing import Any

from hub.config import Settings


def compare(scenario: str, single: Any, cluster: Any, cs: Settings) -> str:
    """One line per headline figure: single node, cluster, cluster / single."""
    c = cs.cassandra
    head = (f"cluster vs single node ({len(c.hosts)} nodes, replication_factor {c.replication_factor}"
            f", consistency {c.level}):")
    if scenario == "fanout":
        rows = [("fan-out entries/s", single.rate, cluster.rate)]
    elif hasattr(single, "batch"):
        rows = [
            ("intake activities/s (batches of 100)", single.batch.ips, cluster.batch.ips),
            ("single-activity requests/s", single.single.rps, cluster.single.rps),
            ("single-activity p99 ms", single.single.p(99), cluster.single.p(99)),
            ("Cassandra INSERT/s from Python", single.insert_rate, cluster.insert_rate),
        ]
    else:
        return head + " (latency runs: compare the two reports above)"
    lines = [head]
    for name, a, b in rows:
        lines.append(f"    {name}: {a:,.1f} single, {b:,.1f} cluster, ratio {b / a if a else float('nan'):.2f}")
    return "\n".join(lines)
