"""Cassandra access from asyncio.

cassandra-driver is callback based and runs its own I/O thread. :class:`Cassandra`
bridges its ``ResponseFuture`` to asyncio futures, prepares each statement once, and
turns driver failures into :class:`~hub.errors.Unavailable` so callers answer 503
instead of 500.

Every statement, batches included, runs at ``[cassandra] consistency`` (the default
execution profile carries it; nothing here overrides it per statement), routed token
aware over DC-aware round robin. Statements that may run twice to the same effect are
marked idempotent, and only those are retried on another node (:class:`IdempotentRetry`).
docs/design.md, Consistency, says why each read sees the writes it must.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import namedtuple
from collections.abc import Iterable, Sequence
from typing import Any

from cassandra import ConsistencyLevel, OperationTimedOut, RequestExecutionException
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import ConstantReconnectionPolicy, DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, PreparedStatement, SimpleStatement

from hub.config import CassandraSettings
from hub.errors import Unavailable
from hub.storage.outage import CASSANDRA_NOT_NOW
from hub.storage.retry import FIRST_PAUSE, LAST_PAUSE, READ_ATTEMPT, IdempotentRetry, is_idempotent, is_read, read_again

__all__ = ["Cassandra", "IdempotentRetry", "is_idempotent", "make_cluster", "named_rows"]

log = logging.getLogger(__name__)

try:  # The C reactor is faster and does not depend on asyncore (removed in Python 3.12).
    from cassandra.io.libevreactor import LibevConnection as _Connection
except ImportError:  # pragma: no cover - depends on how the driver was built
    from cassandra.io.asyncioreactor import AsyncioConnection as _Connection

# Failures of availability (answer 503 and let the client retry). A malformed statement
# (InvalidRequest) is a bug and is left to surface as one.
_DRIVER_ERRORS = (NoHostAvailable, OperationTimedOut, RequestExecutionException, ConnectionException, OSError, *CASSANDRA_NOT_NOW)


class _OneLinePerOutage(logging.Filter):
    """The driver logs a warning for every failed reconnection attempt (one a second with
    the policy below, for as long as the node is down): keep the first per host, drop the
    repeats until it reconnects."""

    def __init__(self) -> None:
        super().__init__()
        self._down: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        host = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
        msg = record.msg if isinstance(record.msg, str) else ""
        if msg.startswith("Error attempting to reconnect"):
            if host in self._down:
                return False
            self._down.add(host)
            record.msg += " (repeats not logged until it is back)"
        elif msg.startswith("Successful reconnection"):
            self._down.discard(host)
        return True


# Logging is per process, so is this filter: one instance, added once (addFilter ignores repeats).
_RECONNECT_LOG = _OneLinePerOutage()


_LEVELS = {
    "one": ConsistencyLevel.ONE, "quorum": ConsistencyLevel.QUORUM, "local_quorum": ConsistencyLevel.LOCAL_QUORUM,
    "local_one": ConsistencyLevel.LOCAL_ONE, "all": ConsistencyLevel.ALL,
}

def make_cluster(settings: CassandraSettings) -> Cluster:
    logging.getLogger("cassandra.pool").addFilter(_RECONNECT_LOG)
    kwargs: dict[str, Any] = {}
    if settings.protocol_version is not None:
        kwargs["protocol_version"] = settings.protocol_version
    level = _LEVELS[settings.level]
    # Token aware: the coordinator is a replica of the partition (a prepared statement's
    # routing key comes from the table's metadata with protocol 3, from the server with 4
    # and up). DC-aware: only nodes of the local datacenter are used (remote ones are
    # ignored); without local_dc that is the datacenter of the first contact point to answer.
    # Replicas in random order: the load spreads over them, and a read run again after
    # one was slow to answer is likely to start at another (hub/storage/retry.py).
    routing = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc or ""), shuffle_replicas=True)
    profile = ExecutionProfile(
        load_balancing_policy=routing, retry_policy=IdempotentRetry(), consistency_level=level,
        # For a lightweight transaction's Paxos round, should one ever be added.
        serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL if settings.level.startswith("local_")
        else ConsistencyLevel.SERIAL,
        request_timeout=settings.request_timeout, row_factory=named_rows,
    )
    return Cluster(
        contact_points=list(settings.hosts),
        port=settings.port,
        connection_class=_Connection,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        # Reconnect quickly so /readyz recovers within seconds of Cassandra coming back.
        reconnection_policy=ConstantReconnectionPolicy(delay=1.0, max_attempts=None),
        connect_timeout=settings.request_timeout,
        control_connection_timeout=settings.request_timeout,
        idle_heartbeat_interval=2,
        idle_heartbeat_timeout=3,
        **kwargs,
    )


class Cassandra:
    """An open session plus an asyncio-friendly ``execute``."""

    def __init__(self, cluster: Cluster, session: Session, keyspace: str, timeout: float) -> None:
        self.cluster = cluster
        self.session = session
        self.keyspace = keyspace
        self.timeout = timeout
        self._prepared: dict[str, PreparedStatement] = {}
        self._preparing: dict[str, asyncio.Future[PreparedStatement]] = {}

    @classmethod
    async def connect(cls, settings: CassandraSettings, keyspace: str | None = None) -> Cassandra:
        """Connect in a thread (the driver blocks); ``keyspace`` may not exist yet (migrate)."""
        cluster = make_cluster(settings)
        try:
            session = await asyncio.to_thread(cluster.connect)
        except _DRIVER_ERRORS as e:
            cluster.shutdown()
            raise Unavailable(f"Cassandra at {', '.join(settings.hosts)}:{settings.port} does not answer: {e}") from e
        ks = keyspace if keyspace is not None else settings.keyspace
        return cls(cluster, session, ks, settings.request_timeout)

    async def close(self) -> None:
        await asyncio.to_thread(self.cluster.shutdown)

    async def prepare(self, cql: str) -> PreparedStatement:
        """The statement, prepared once per process.

        Statements are written with {ks} and %s placeholders (as for simple statements), so
        one code path serves any keyspace (tests use one per run). The driver's prepare
        blocks until the node answers, and a server starts with none prepared, so it runs
        in a thread and the event loop goes on answering meanwhile (one prepare on the
        loop's thread was seen to stall it for 17 ms). Concurrent first uses share one.
        """
        stmt = self._prepared.get(cql)
        if stmt is not None:
            return stmt
        pending = self._preparing.get(cql)
        if pending is None:
            text = cql.replace("{ks}", self.keyspace).replace("%s", "?")
            pending = asyncio.ensure_future(asyncio.to_thread(self._prepare, text))
            self._preparing[cql] = pending
            pending.add_done_callback(functools.partial(self._prepared_or_failed, cql))
        stmt = await asyncio.shield(pending)
        self._prepared[cql] = stmt
        return stmt

    def _prepare(self, text: str) -> PreparedStatement:
        stmt = self.session.prepare(text)
        stmt.is_idempotent = is_idempotent(text)  # bound statements take it from here
        return stmt

    def _prepared_or_failed(self, cql: str, done: asyncio.Future[PreparedStatement]) -> None:
        # A failure is raised to every waiter; it is read here too, so that one whose
        # waiters were all cancelled is not reported as never retrieved. The next use retries.
        self._preparing.pop(cql, None)
        if not done.cancelled():
            done.exception()

    async def execute(self, cql: str, params: Sequence[Any] | None = None, *, fetch_size: int | None = None) -> list[Any]:
        """Run one statement (prepared when it has parameters) and return all its rows.

        A read whose replicas did not agree in time is run again after a pause, until
        ``timeout`` seconds after the first try (hub/storage/retry.py ``read_again``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        pause, read = FIRST_PAUSE, is_read(cql)
        while True:
            try:
                left = max(0.1, deadline - loop.time())
                return await self._execute(cql, params, fetch_size, min(left, READ_ATTEMPT) if read else left, left)
            except _DRIVER_ERRORS as e:
                if not (read and read_again(e) and loop.time() + pause < deadline - 0.5):
                    raise Unavailable(f"Cassandra: {type(e).__name__}: {e}") from e
            await asyncio.sleep(pause)
            pause = min(LAST_PAUSE, pause * 2)

    async def _execute(self, cql: str, params: Sequence[Any] | None, fetch_size: int | None,
                       first: float, rest: float) -> list[Any]:
        """One try: ``first`` seconds for the first page, ``rest`` for all of them (the
        driver counts a statement's timeout from its start, across pages)."""
        if params is not None:
            stmt: Any = await self.prepare(cql)
        else:
            text = cql.replace("{ks}", self.keyspace)
            stmt = SimpleStatement(text, is_idempotent=is_idempotent(text))
        if fetch_size is not None and params is not None:
            stmt = stmt.bind(params)
            stmt.fetch_size = fetch_size
            params = None
        rows: list[Any] = []
        future = self.session.execute_async(stmt, params, timeout=first)
        while True:
            page = await _result(future)
            rows.extend(page)
            if not future.has_more_pages:
                return rows
            future.timeout = rest
            future.start_fetching_next_page()

    async def execute_many(self, cql: str, params_list: Iterable[Sequence[Any]], concurrency: int = 64) -> None:
        """Run one prepared statement for many parameter sets, ``concurrency`` in flight."""
        sem = asyncio.Semaphore(concurrency)

        async def one(p: Sequence[Any]) -> None:
            async with sem:
                await self.execute(cql, p)

        await asyncio.gather(*(one(p) for p in params_list))

    async def batch(self, statements: Iterable[tuple[str, Sequence[Any]]], *, logged: bool = True) -> None:
        """A batch: logged when rows in several tables must land together or not at all.

        A logged batch that the coordinator accepted (its batch log written on other nodes)
        is applied whole, even if the answer is a timeout: the batch log replays it. It is
        idempotent when every statement in it is, and retried only then."""
        batch = BatchStatement(batch_type=BatchType.LOGGED if logged else BatchType.UNLOGGED)
        try:
            idempotent = True
            for cql, params in statements:
                stmt = await self.prepare(cql)
                idempotent = idempotent and stmt.is_idempotent
                batch.add(stmt, params)
            batch.is_idempotent = idempotent
            await _result(self.session.execute_async(batch, timeout=self.timeout))
        except _DRIVER_ERRORS as e:
            raise Unavailable(f"Cassandra: {type(e).__name__}: {e}") from e


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> Any:
    return namedtuple("Row", names, rename=True)


def named_rows(names: list[str], rows: list[tuple[Any, ...]]) -> list[Any]:
    """Rows as named tuples, like the driver's ``named_tuple_factory``, but with one class
    per column list instead of a new class (and its reference cycles) per result."""
    cls = _row_class(tuple(names))
    return [cls._make(r) for r in rows]


async def _result(future: ResponseFuture) -> list[Any]:
    """Await the driver's future (its callbacks come from the driver's I/O thread)."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[list[Any]] = loop.create_future()

    def ok(rows: list[Any]) -> None:
        loop.call_soon_threadsafe(_set, result, rows, None)

    def err(exc: BaseException) -> None:
        loop.call_soon_threadsafe(_set, result, None, exc)

    future.add_callbacks(ok, err)
    try:
        return await result
    finally:
        _drop_timer(future)


def _drop_timer(future: ResponseFuture) -> None:
    """Forget the request's finished timeout timer.

    The driver cancels it but keeps it, and the timer's callback is bound to the future:
    every request was left as a reference cycle of about 38 objects (the future, its
    event, query plan, message...). Only the cyclic collector could free them, in pauses
    of 15 to 70 ms on the event loop at a few hundred requests a second
    (docs/benchmarks.md, Intake). Without the timer, reference counting frees the request
    as soon as it is answered. A next page starts a new timer (``_start_timer`` creates
    one when there is none).
    """
    future._timer = None


def _set(fut: asyncio.Future[list[Any]], rows: list[Any] | None, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(list(rows or ()))
