"""The hub's Prometheus metrics (docs/api.md, Metrics), in a registry owned by one process.

Every metric lives in the :class:`HubMetrics` it was made in, whose ``registry`` is a
``CollectorRegistry`` of its own: never prometheus_client's global default, so several
apps or workers in one process (tests) do not collide. ``hub serve`` makes one for its
app and hands it to its :class:`~hub.core.Hub`; ``hub worker`` makes one per process. A
Hub built without one gets a private registry nobody scrapes (the no-op path): code
that observes never checks for None.

Costs on the hot paths: one label lookup and one increment per request, per job, per
websocket frame, per fan-out chunk and feed group; nothing per feed entry.

``hub_webhook_deliveries_total`` and ``hub_emails_total`` exist at zero: outgoing
webhooks and e-mail are not built yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from redis.asyncio import Redis

# Seconds from the 202 to the last follower feed written: milliseconds when idle, up to
# minutes behind a backlog or an outage (jobs are retried for up to an hour).
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
HTTP_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
JOB_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# How long a scrape waits for Redis to tell the queue depths.
DEPTH_TIMEOUT_S = 1.0


@dataclass(eq=False)
class HubMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("hub_http_requests_total", "HTTP requests answered", ["route", "status"], registry=r)
        self.latency = Histogram("hub_http_request_seconds", "HTTP request latency", ["route"], registry=r,
                                 buckets=HTTP_BUCKETS)
        self.activities = Counter("hub_activities_accepted_total", "Activities stored and queued (202)", ["app"],
                                  registry=r)
        self.fanout_lag = Histogram("hub_fanout_lag_seconds",
                                    "From an activity's 202 to the last follower feed of its fan-out written",
                                    registry=r, buckets=LAG_BUCKETS)
        self.fanout_entries = Counter("hub_fanout_entries_total", "Follower feed entries written by fan-out",
                                      ["group"], registry=r)
        self.queue_depth = Gauge("hub_queue_depth", "Jobs waiting in an arq queue (read at scrape)", ["queue"],
                                 registry=r)
        self.jobs = Counter("hub_jobs_total", "Worker job runs by outcome (ok, retry, error, cancelled)",
                            ["job", "outcome"], registry=r)
        self.job_seconds = Histogram("hub_job_seconds", "Worker job run time", ["job"], registry=r,
                                     buckets=JOB_BUCKETS)
        self.rebuilds = Counter("hub_feed_rebuilds_total", "Feed caches rebuilt from Cassandra, by group kind",
                                ["kind"], registry=r)
        self.ws_connections = Gauge("hub_ws_connections", "Open websocket connections", registry=r)
        self.ws_frames = Counter("hub_ws_frames_total", "Websocket frames sent, by op", ["op"], registry=r)
        self.rt_messages = Counter("hub_realtime_messages_total",
                                   "Change messages this gateway received and decoded (its sockets' feeds only)",
                                   registry=r)
        self.ws_dropped = Counter("hub_ws_dropped_total", "Websocket connections closed by the server, by reason",
                                  ["reason"], registry=r)
        self.dependency_errors = Counter("hub_dependency_errors_total",
                                         "Requests, frames and jobs that met a dependency outage", ["dependency"],
                                         registry=r)
        self.webhook_deliveries = Counter("hub_webhook_deliveries_total",
                                          "Outgoing webhook deliveries (not built yet: stays at zero)", ["outcome"],
                                          registry=r)
        self.emails = Counter("hub_emails_total", "E-mails sent (not built yet: stays at zero)", ["outcome"],
                              registry=r)
        # Series that exist before anything happens, so dashboards show 0 rather than nothing.
        for outcome in ("delivered", "failed"):
            self.webhook_deliveries.labels(outcome)
        for outcome in ("sent", "failed"):
            self.emails.labels(outcome)
        for dependency in ("redis", "cassandra"):
            self.dependency_errors.labels(dependency)

    def exposition(self) -> bytes:
        """The text format of every metric of this registry."""
        return generate_latest(self.registry)

    def dependency_error(self, exc: BaseException) -> None:
        self.dependency_errors.labels(dependency_of(exc)).inc()

    async def refresh_queue_depth(self, redis: Redis, queues: Sequence[tuple[str, str]]) -> None:
        """Set ``hub_queue_depth`` from the arq queues (sorted sets) ``(label, key)``, in one
        round trip. Called on each scrape; if Redis does not answer in time the gauges keep
        their last values and a dependency error is counted (a scrape never fails)."""
        try:
            async with redis.pipeline(transaction=False) as p:
                for _, key in queues:
                    p.zcard(key)
                depths = await asyncio.wait_for(p.execute(), DEPTH_TIMEOUT_S)
        except Exception as e:  # any outage: the scrape still answers
            self.dependency_error(e)
            return
        for (label, _), depth in zip(queues, depths):
            self.queue_depth.labels(label).set(int(depth))


def dependency_of(exc: BaseException) -> str:
    """``redis``, ``cassandra`` or ``other``: from the exception's module, its cause's, or
    the message of the hub's own ``Unavailable`` (which names the dependency first)."""
    seen: BaseException | None = exc
    while seen is not None:
        mod = type(seen).__module__
        if mod.startswith("redis"):
            return "redis"
        if mod.startswith("cassandra"):
            return "cassandra"
        text = str(seen)
        if text.startswith("Redis"):
            return "redis"
        if text.startswith("Cassandra"):
            return "cassandra"
        seen = seen.__cause__
    return "other"
