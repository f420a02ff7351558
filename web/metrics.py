"""Prometheus metrics of the web app: the hub's own set (hub/metrics.py), in a registry
the app owns (not the global one), shared with the app's Hub."""

from __future__ import annotations

from hub.metrics import HubMetrics

Metrics = HubMetrics

__all__ = ["Metrics"]
