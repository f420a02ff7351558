"""What a dependency outage looks like, in one place.

The exceptions redis-py and cassandra-driver raise when Redis or Cassandra does not
answer (refused, reset, timed out, no host). The web app's error middleware and the
websocket gateway turn them into the public ``unavailable`` (HTTP 503, or an error
frame): a client may retry. A malformed command or statement (``ResponseError``,
``InvalidRequest``) is a bug, not an outage, and is not in this list.
"""

from __future__ import annotations

from cassandra import OperationTimedOut, RequestExecutionException
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.errors import Unavailable

DEPENDENCY_DOWN: tuple[type[BaseException], ...] = (
    RedisConnectionError, RedisTimeoutError, BusyLoadingError,
    NoHostAvailable, OperationTimedOut, RequestExecutionException, ConnectionException,
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
