"""Which Cassandra statements are retried, where, and when.

Two layers. The driver's retry policy (:class:`IdempotentRetry`) decides, per failed
attempt, whether to send an idempotent statement to another node at once. Above it,
:func:`read_again` says which failed reads :class:`~hub.storage.cassandra.Cassandra`
runs again after a pause, within the request's timeout: a read that failed because the
replicas it asked disagreed while one replica was dead.

Why that second layer (Cassandra 2.1, measured on the three local nodes, docs/scaling.md,
One node down): a quorum read whose two replicas disagree (a row being written at the
same moment; intake's foreign-id read keeps its own row out of the slice it reads,
hub/storage/foreignids.py, but a worker's or a rebuild's read may still meet a write) resolves the difference in a
repair round that waits for every replica it contacted, the dead one too, until the
node's read timeout while gossip has not convicted the dead node yet, and that 2.1
answers Unavailable (consistency ALL) at once after it has. Sent again at once, the read
often meets the same write still in flight; a moment later the write has reached both
live replicas and the read succeeds. A retry never lowers the consistency level.
"""

from __future__ import annotations

import re
from typing import Any

from cassandra import OperationTimedOut, ReadTimeout, Unavailable, WriteType
from cassandra.cluster import NoHostAvailable
from cassandra.policies import RetryPolicy

# A write that may not run twice: a lightweight transaction (IF ...), a counter or a list
# changed relative to itself (x = x + ...), a value made by the server at each run (now()).
_NOT_TWICE = re.compile(r"\bIF\b|\b(\w+)\s*=\s*\1\s*[-+]|=\s*\[.*\]\s*\+|\b(now|uuid)\s*\(", re.IGNORECASE)

# Pauses before a read is run again (seconds, doubling), within the request timeout.
FIRST_PAUSE, LAST_PAUSE = 0.05, 0.8
# The longest one try of a read may take (the driver's timeout for it): a read stuck on
# a coordinator is abandoned and run again while the request's time lasts.
READ_ATTEMPT = 2.0


def is_idempotent(cql: str) -> bool:
    """Whether running ``cql`` twice (with the same client timestamp, as a retry does)
    leaves the same rows as running it once: reads, and writes of given values or deletes.
    Schema statements are not retried (the driver waits for schema agreement itself)."""
    verb = cql.lstrip().split(None, 1)[0].upper() if cql.strip() else ""
    if verb == "SELECT":
        return True
    return verb in ("INSERT", "UPDATE", "DELETE") and not _NOT_TWICE.search(cql)


def is_read(cql: str) -> bool:
    return cql.lstrip()[:6].upper() == "SELECT"


_AGAIN = (ReadTimeout, Unavailable, OperationTimedOut)


def read_again(error: BaseException) -> bool:
    """Whether a read that failed with ``error`` may succeed when run again shortly: the
    nodes answered, but a quorum of replicas did not agree in time (a read timeout, or an
    Unavailable, on every node the driver tried), or the try took longer than
    ``READ_ATTEMPT``. Nodes that refuse connections are not tried again here (the driver
    already tried every live one)."""
    if isinstance(error, _AGAIN):
        return True
    errors: dict[Any, Any] = (getattr(error, "errors", None) or {}) if isinstance(error, NoHostAvailable) else {}
    return bool(errors) and all(isinstance(e, _AGAIN) for e in errors.values())


class IdempotentRetry(RetryPolicy):  # type: ignore[misc]  # the driver has no type hints
    """The driver's default policy, except that only idempotent statements are retried
    after they may have been applied, and on the next node rather than the same one.

    The default retries every statement after a connection error (one may have been
    applied), and retries no write that timed out but a batch log's. Here an idempotent
    statement is tried once more on the next node of the plan after a write timeout, a
    read timeout or a connection error (a node killed mid-request), so a node going down
    costs no 503; a statement that may not run twice is answered with the error.
    Unavailable (too few replicas alive: nothing was applied) keeps the default (one
    retry on the next node). A retry keeps the statement's consistency: never a lower one.
    """

    def on_write_timeout(self, query: Any, consistency: Any, write_type: Any, required_responses: int,
                         received_responses: int, retry_num: int) -> tuple[int, Any]:
        if retry_num == 0 and write_type == WriteType.BATCH_LOG:
            return self.RETRY, consistency  # the batch log was not written: nothing applied yet
        if retry_num == 0 and getattr(query, "is_idempotent", False):
            return self.RETRY_NEXT_HOST, consistency
        return self.RETHROW, None

    def on_read_timeout(self, query: Any, consistency: Any, required_responses: int, received_responses: int,
                        data_retrieved: bool, retry_num: int) -> tuple[int, Any]:
        # The coordinator waited for a replica that may be dead: another coordinator may
        # pick (or hear from) other replicas. Later tries: Cassandra.execute, after a pause.
        if retry_num == 0 and getattr(query, "is_idempotent", False):
            return self.RETRY_NEXT_HOST, consistency
        return self.RETHROW, None

    def on_request_error(self, query: Any, consistency: Any, error: Any, retry_num: int) -> tuple[int, Any]:
        if getattr(query, "is_idempotent", False):
            return self.RETRY_NEXT_HOST, consistency  # the plan ends after the last live node
        return self.RETHROW, None
