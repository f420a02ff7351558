"""Prometheus metrics, in a registry owned by the application (not the global one)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "hub_http_requests_total", "HTTP requests answered", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "hub_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.activities = Counter(
            "hub_activities_accepted_total", "Activities stored and queued", ["app"], registry=self.registry
        )
