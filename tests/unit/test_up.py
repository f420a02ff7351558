"""``hub up``'s children: what each is started with."""

from __future__ import annotations

import sys

from cli.main import _parser
from cli.up import children_of


def test_hub_up_passes_its_worker_metrics_port_to_the_worker() -> None:
    args = _parser().parse_args(["--config", "c.toml", "up", "--worker-metrics-port", "9101"])
    serve, worker = children_of(args.config, args.worker_metrics_port)
    assert serve.argv[:3] == [sys.executable, "-m", "cli.main"]
    # Each child's own command line, as `hub` parses it: the worker serves metrics on 9101.
    child = _parser().parse_args(worker.argv[3:])
    assert (child.config, child.command, child.metrics_port) == ("c.toml", "worker", 9101)
    assert _parser().parse_args(serve.argv[3:]).command == "serve"


def test_hub_up_without_the_flag_starts_a_worker_without_metrics() -> None:
    args = _parser().parse_args(["up"])
    _, worker = children_of(args.config, args.worker_metrics_port)
    child = _parser().parse_args(worker.argv[3:])
    assert child.command == "worker" and child.metrics_port is None and child.config is None
