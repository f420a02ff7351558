"""What a dependency outage looks like, in one place.

The exceptions redis-py and cassandra-driver raise when Redis or Cassandra does not
answer (refused, reset, timed out, no host). The web app's error middleware and the
websocket gateway turn them into the public ``unavailable`` (HTTP 503, or an error
frame): a client may retry. A malformed command or statement (``ResponseError``,
``InvalidRequest``) is a bug, not an outage, and is not in this list.

:class:`OutageLog` keeps the logs of the web, realtime and worker processes readable through an
outage: one line when it starts and one when it ends, not one per request or attempt.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from cassandra import OperationTimedOut, RequestExecutionException
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionBusy, ConnectionException
from cassandra.protocol import RequestExecutionException as NodeCannotNow
from cassandra.protocol import ServerError
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.errors import Unavailable

# What a Cassandra node that is up but broken or busy answers, as the driver raises it:
# an internal error (ServerError, e.g. an exception on the node while it starts or runs
# out of disk), the error replies that are not mapped to the ``cassandra`` exceptions
# (overloaded, bootstrapping, truncate failure: cassandra.protocol's own
# RequestExecutionException, not the one in ``cassandra``), and no free stream on the
# connection. Not a malformed statement (RequestValidationException: a bug), nor
# ProtocolException (a driver/server mismatch).
CASSANDRA_NOT_NOW: tuple[type[BaseException], ...] = (ServerError, NodeCannotNow, ConnectionBusy)

# A Redis Cluster in failover, after the client's own retries (hub/storage/redisclient.py):
# CLUSTERDOWN and MASTERDOWN (ClusterDownError), TRYAGAIN, a slot no node serves, or no
# start-up node answering (RedisClusterException). MOVED and ASK never get here: the
# client follows them. CROSSSLOT is a bug (a script given keys of two slots), not listed.
REDIS_CLUSTER_DOWN: tuple[type[BaseException], ...] = (
    ClusterDownError, TryAgainError, SlotNotCoveredError, RedisClusterException,
)

DEPENDENCY_DOWN: tuple[type[BaseException], ...] = (
    RedisConnectionError, RedisTimeoutError, BusyLoadingError, *REDIS_CLUSTER_DOWN,
    NoHostAvailable, OperationTimedOut, RequestExecutionException, ConnectionException, *CASSANDRA_NOT_NOW,
    ConnectionError, TimeoutError, OSError,
)


def as_unavailable(exc: BaseException) -> Unavailable:
    """The public error for an outage (docs/api.md, Errors), naming the dependency without internals."""
    mod = type(exc).__module__
    if mod.startswith("redis"):
        what = "Redis"
    elif mod.startswith("cassandra"):
        what = "Cassandra"
    else:
        what = "a dependency"
    return Unavailable(f"{what} does not answer ({type(exc).__name__}); retry later")


@dataclass
class OutageLog:
    """One warning when ``what`` starts failing and one when it works again, whatever the
    number of requests or attempts that meet the outage meanwhile. The one implementation,
    for web, realtime and workers (workers/resilience.py ``outage_log``). Lines go to
    ``logger``: the module that met it."""

    what: str
    logger: logging.Logger
    failures: int = 0  # during the current outage, for the line that ends it
    _since: float | None = field(default=None, init=False)

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self._since is None:
            self._since = time.monotonic()
            self.logger.warning("%s is unavailable (%s: %s); not logged again until it is back",
                                self.what, type(exc).__name__, str(exc)[:200])

    def recovered(self) -> None:
        if self._since is not None:
            self.logger.warning("%s is back after %.1f s (%d failures meanwhile)",
                                self.what, time.monotonic() - self._since, self.failures)
            self._since = None
            self.failures = 0
