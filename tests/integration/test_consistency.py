"""Consistency and routing on the real node (docs/scaling.md, docs/design.md Consistency): every statement, batches
included, runs at ``[cassandra] consistency``; statements that may run twice are marked
idempotent and only those are retried; ``[cassandra] replication`` makes a
NetworkTopologyStrategy keyspace that a hub routed to ``local_dc`` reads and writes."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cassandra import ConsistencyLevel, WriteType
from cassandra.policies import DCAwareRoundRobinPolicy, RetryPolicy, TokenAwarePolicy
from cassandra.query import SimpleStatement

from hub.config import Settings
from hub.storage.cassandra import Cassandra, IdempotentRetry, is_idempotent
from hub.storage.follows import Follow, FollowStore
from hub.storage.marks import MarkStore
from hub.storage.redis import connect as redis_connect
from hub.storage.schema import replication_of
from tests.conftest import uid


@contextmanager
def requests_of(db: Cassandra) -> Iterator[list[Any]]:
    """Every ResponseFuture the session starts meanwhile (the real requests still run)."""
    seen: list[Any] = []
    real = db.session.execute_async

    def recording(*args: Any, **kwargs: Any) -> Any:
        future = real(*args, **kwargs)
        seen.append(future)
        return future

    db.session.execute_async = recording  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        db.session.execute_async = real  # type: ignore[method-assign]


def with_cassandra(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, cassandra=dataclasses.replace(settings.cassandra, **changes))


async def test_every_statement_and_batch_runs_at_the_configured_level(settings: Settings) -> None:
    s = with_cassandra(settings, consistency="local_quorum")
    db = await Cassandra.connect(s.cassandra)
    r = redis_connect(s.redis)
    app, alice, bob = f"cl-{secrets.token_hex(3)}", uid("alice"), uid("bob")
    try:
        profile = db.cluster.profile_manager.default
        assert profile.consistency_level == ConsistencyLevel.LOCAL_QUORUM
        assert profile.serial_consistency_level == ConsistencyLevel.LOCAL_SERIAL
        assert isinstance(profile.load_balancing_policy, TokenAwarePolicy)
        assert isinstance(profile.load_balancing_policy._child_policy, DCAwareRoundRobinPolicy)
        assert isinstance(profile.retry_policy, IdempotentRetry)
        follows, marks = FollowStore(db, r, s.redis.key_prefix), MarkStore(db, r, s.redis.key_prefix)
        with requests_of(db) as sent:
            await follows.add(app, Follow(bob, alice, None, 0))  # a logged batch
            assert await follows.followers(app, alice) == [bob]  # read right after the write
            await marks.mark(app, f"notification:{bob}", "seen", {"*": "01"})  # an unlogged batch
            assert (await marks.load(app, f"notification:{bob}"))  # and read back
            await db.execute("SELECT release_version FROM system.local")  # a simple statement
        assert len(sent) >= 5
        assert {f.message.consistency_level for f in sent} == {ConsistencyLevel.LOCAL_QUORUM}
        assert all(f.query.is_idempotent for f in sent), [f.query for f in sent if not f.query.is_idempotent]
        assert {type(f.query).__name__ for f in sent} >= {"BatchStatement", "BoundStatement", "SimpleStatement"}
    finally:
        await r.aclose()
        await db.close()


async def test_the_default_level_follows_the_replication_factor(settings: Settings) -> None:
    # RF 1 (the tests' node): ONE. Any explicit level is used as given, ALL included.
    for cassandra, level in (({}, ConsistencyLevel.ONE), ({"consistency": "all"}, ConsistencyLevel.ALL),
                             ({"consistency": "quorum"}, ConsistencyLevel.QUORUM)):
        db = await Cassandra.connect(with_cassandra(settings, **cassandra).cassandra)
        try:
            with requests_of(db) as sent:
                await db.execute("SELECT id FROM {ks}.activities WHERE app = %s AND id = %s", ("x", "y"))
            assert [f.message.consistency_level for f in sent] == [level]
        finally:
            await db.close()


def test_only_statements_that_may_run_twice_are_idempotent() -> None:
    assert is_idempotent("SELECT a FROM ks.t WHERE k = ?")
    assert is_idempotent("INSERT INTO ks.t (k, v) VALUES (?, ?) USING TTL ?")
    assert is_idempotent("UPDATE ks.t USING TTL ? SET at = ? WHERE app = ?")
    assert is_idempotent("DELETE ids FROM ks.t WHERE k = ?")
    assert not is_idempotent("INSERT INTO ks.t (k, v) VALUES (?, ?) IF NOT EXISTS")
    assert not is_idempotent("UPDATE ks.t SET v = ? WHERE k = ? IF v = ?")
    assert not is_idempotent("UPDATE ks.c SET n = n + 1 WHERE k = ?")
    assert not is_idempotent("UPDATE ks.t SET l = l + [1] WHERE k = ?")
    assert not is_idempotent("UPDATE ks.t SET l = [1] + l WHERE k = ?")
    assert not is_idempotent("INSERT INTO ks.m (v, at) VALUES (?, dateof(now()))")
    assert not is_idempotent("CREATE TABLE IF NOT EXISTS ks.t (k int PRIMARY KEY)")


def test_only_idempotent_statements_are_retried_on_another_node() -> None:
    policy, one = IdempotentRetry(), ConsistencyLevel.QUORUM
    safe = SimpleStatement("DELETE FROM ks.t WHERE k = 1", is_idempotent=True)
    unsafe = SimpleStatement("UPDATE ks.c SET n = n + 1 WHERE k = 1")
    # A node gone mid-request (connection error) or a write timeout: maybe applied.
    assert policy.on_request_error(safe, one, OSError(), 0) == (RetryPolicy.RETRY_NEXT_HOST, one)
    assert policy.on_request_error(unsafe, one, OSError(), 0) == (RetryPolicy.RETHROW, None)
    assert policy.on_write_timeout(safe, one, WriteType.SIMPLE, 2, 1, 0) == (RetryPolicy.RETRY_NEXT_HOST, one)
    assert policy.on_write_timeout(safe, one, WriteType.SIMPLE, 2, 1, 1) == (RetryPolicy.RETHROW, None)
    assert policy.on_write_timeout(unsafe, one, WriteType.SIMPLE, 2, 1, 0) == (RetryPolicy.RETHROW, None)
    # The batch log not written: nothing applied, any batch may be tried again.
    assert policy.on_write_timeout(unsafe, one, WriteType.BATCH_LOG, 2, 1, 0) == (RetryPolicy.RETRY, one)
    # Never at a lower level.
    assert policy.on_unavailable(safe, one, 2, 1, 0) == (RetryPolicy.RETRY_NEXT_HOST, None)


def test_replication_maps() -> None:
    c = Settings().cassandra
    assert replication_of(c) == "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    nts = dataclasses.replace(c, replication=(("dc1", 3), ("dc2", 2)))
    assert replication_of(nts) == "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"


async def test_a_network_topology_keyspace_read_and_written_in_the_local_datacenter(settings: Settings) -> None:
    # The local node's datacenter under SimpleSnitch is "datacenter1".
    ks = f"{settings.cassandra.keyspace}_nts"
    c = dataclasses.replace(settings.cassandra, keyspace=ks, replication=(("datacenter1", 1),),
                            local_dc="datacenter1", consistency="local_quorum")
    db = await Cassandra.connect(c)
    try:
        await db.execute("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = " + replication_of(c))
        rows = await db.execute("SELECT strategy_class, strategy_options FROM system.schema_keyspaces "
                                "WHERE keyspace_name = %s", (ks,))
        assert rows[0].strategy_class.endswith("NetworkTopologyStrategy")
        assert '"datacenter1":"1"' in rows[0].strategy_options
        await db.execute("CREATE TABLE IF NOT EXISTS {ks}.t (k text PRIMARY KEY, v text)")
        with requests_of(db) as sent:
            await db.execute("INSERT INTO {ks}.t (k, v) VALUES (%s, %s)", ("a", "1"))
            assert [r.v for r in await db.execute("SELECT v FROM {ks}.t WHERE k = %s", ("a",))] == ["1"]
        assert {f.message.consistency_level for f in sent} == {ConsistencyLevel.LOCAL_QUORUM}
        assert db.cluster.profile_manager.default.load_balancing_policy._child_policy.local_dc == "datacenter1"
    finally:
        await db.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        await db.close()
