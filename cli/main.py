"""The ``hub`` command.

It lives outside ``hub/`` because it wires every part together (web, workers, realtime),
while ``hub/`` must import none of them. Each subcommand reads the configuration once and
passes the settings down.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable, Sequence

from hub.config import Settings, load_settings
from hub.errors import ConfigError, HubError

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
        return int(args.func(args, settings) or 0)
    except ConfigError as e:
        print(f"hub: {e}", file=sys.stderr)
        return 2
    except HubError as e:
        print(f"hub: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hub", description="Notification and activity hub")
    p.add_argument("--config", help="configuration file (default: $HUB_CONFIG or ./config.toml)")
    sub = p.add_subparsers(dest="command")

    up = sub.add_parser("up", help="start local services if needed, migrate, run server and worker")
    up.add_argument("--worker-metrics-port", type=int, metavar="N",
                    help="the worker's Prometheus metrics at GET /metrics on port N (hub worker --metrics-port)")
    up.set_defaults(func=_up)

    serve = sub.add_parser("serve", help="HTTP API, websocket gateway and pages")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="arq worker: fan-out, aggregation, maintenance")
    worker.add_argument("--queue", choices=["high", "low"], help="consume only this queue (default: both)")
    worker.add_argument("--verbose", action="store_true", help="log every job")
    worker.add_argument("--metrics-port", type=int, metavar="N", help="serve Prometheus metrics at GET /metrics on port N")
    worker.set_defaults(func=_worker)

    migrate = sub.add_parser("migrate", help="create or upgrade the keyspace and tables")
    migrate.set_defaults(func=_migrate)

    services = sub.add_parser("services", help="the local Redis and Cassandra that `hub up` manages")
    services.add_argument("action", choices=["start", "stop", "status"])
    services.set_defaults(func=_services)

    token = sub.add_parser("token", help="print a user token")
    token.add_argument("app")
    token.add_argument("user")
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    token.set_defaults(func=_token)

    bench = sub.add_parser("bench", help="benchmarks (see docs/benchmarks.md)")
    bench.add_argument("scenario", choices=["fanout", "intake", "read", "push", "soak", "inbox", "memory"])
    bench.add_argument("--quick", action="store_true", help="a smaller run, for smoke tests")
    bench.add_argument("--cluster", metavar="CONFIG", help="intake, fanout: run again on this configuration "
                       "(config.cluster.toml) and print both runs' figures side by side")
    bench.add_argument("--against", metavar="REF", help="run the scenario alternately on a git worktree of REF "
                       "and on this tree; print each figure's median and new/old")
    bench.add_argument("--rounds", type=int, default=3, help="--against: runs of each side (default 3)")
    soak = bench.add_argument_group("soak", "the soak scenario's load (defaults: 10 minutes, lines every 30 s, "
                                    "100 posts/s, 200 reads/s, 200 sockets)")
    soak.add_argument("--minutes", type=float)
    soak.add_argument("--interval", type=float, help="seconds between printed lines")
    soak.add_argument("--posts", type=float, help="posts a second")
    soak.add_argument("--reads", type=float, help="reads a second")
    soak.add_argument("--sockets", type=int)
    bench.set_defaults(func=_bench)
    return p


def _install_uvloop() -> None:
    import uvloop

    uvloop.install()


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import realtime
    from web.app import create_app
    from web.keys import HUB
    from web.server import serve

    _install_uvloop()
    port = args.port or settings.server.port
    app = create_app(settings)
    _tune_gc()
    realtime.setup(app, settings, get_hub=lambda a: a[HUB])
    # Not web.run_app: web/server.py answers aiohttp's own protocol errors in the error shape of docs/api.md.
    serve(app, settings.server.host, port)
    return 0


def _tune_gc() -> None:
    """Fewer collections for a long-running server: what exists at start-up is moved out
    of the collector's sight, and the youngest generation is collected every 20,000
    allocations instead of every 700. Measured with `hub bench read`: the notification
    page went from about 1,650 to 2,150 requests/s (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 1_000)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from hub.queue import PRIORITIES
    from workers.main import run_workers

    _install_uvloop()
    # arq logs two lines per job at INFO; at fan-out rates that is most of the output.
    logging.getLogger("arq.worker").setLevel(logging.INFO if args.verbose else logging.WARNING)
    queues = (args.queue,) if args.queue else PRIORITIES
    asyncio.run(run_workers(settings, queues, metrics_port=args.metrics_port))
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from cli.progress import status_lines
    from hub.storage.schema import LATEST, migrate

    with status_lines("migrating the schema") as progress:
        applied = asyncio.run(migrate(settings.cassandra, progress=progress))
    ks = settings.cassandra.keyspace
    print(f"keyspace {ks}: schema version {LATEST}" + (f" (applied {applied})" if applied else " (up to date)"))
    return 0


def _services(args: argparse.Namespace, settings: Settings) -> int:
    from cli.progress import status_lines
    from hub import services

    try:
        if args.action == "start":
            with status_lines("starting services") as progress:
                services.start(settings, progress=progress)
        elif args.action == "stop":
            services.stop(settings, progress=print)
        else:
            for st in services.status(settings):
                print(st)
    except services.ServiceError as e:
        print(f"hub: {e}", file=sys.stderr)
        return 1
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from hub.domain.tokens import issue_token

    app = settings.apps.get(args.app)
    if app is None:
        print(f"hub: no app {args.app!r} in the configuration", file=sys.stderr)
        return 2
    print(issue_token(app.id, app.key, args.user, args.ttl, now=int(time.time())))
    return 0


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from cli.up import up

    return up(settings, config=args.config, worker_metrics_port=args.worker_metrics_port)


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from bench.main import run_bench

    if args.against:
        from bench.against import run_against

        return run_against(args.against, args.scenario, rounds=args.rounds, quick=args.quick)
    soak = {k: getattr(args, k) for k in ("minutes", "interval", "posts", "reads", "sockets")}
    return run_bench(settings, args.scenario, quick=args.quick, config=args.config, soak=soak, cluster=args.cluster)


if __name__ == "__main__":
    sys.exit(main())
