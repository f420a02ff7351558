"""Local Redis and Cassandra for development and tests, installed and started on first use.

``start`` skips a server that already answers at the configured address (an operator's
own) and never starts anything on a host that is not this machine. ``stop`` only stops
what the hub started, found through pid files under ``settings.services.state_dir``.
"""

from __future__ import annotations

from hub.services.cassandra_local import cassandra_status, cql_answers, release_version, start_cassandra
from hub.services.manager import KINDS, start, status, stop, stop_instance
from hub.services.process import ManagedService, Progress, ServiceError, ServiceStatus
from hub.services.redis_local import redis_answers, redis_status, start_redis

__all__ = [
    "KINDS", "ManagedService", "Progress", "ServiceError", "ServiceStatus", "cassandra_status", "cql_answers",
    "redis_answers", "redis_status", "release_version", "start", "start_cassandra", "start_redis", "status",
    "stop", "stop_instance",
]
