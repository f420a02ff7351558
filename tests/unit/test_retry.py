"""Which failed Cassandra statements are tried again (hub/storage/retry.py)."""

from __future__ import annotations

from cassandra import ConsistencyLevel, OperationTimedOut, ReadTimeout, Unavailable
from cassandra.cluster import NoHostAvailable
from cassandra.policies import RetryPolicy
from cassandra.query import SimpleStatement

from hub.storage.retry import IdempotentRetry, is_read, read_again


def test_a_read_timeout_moves_to_the_next_node_once() -> None:
    policy, q = IdempotentRetry(), ConsistencyLevel.LOCAL_QUORUM
    read = SimpleStatement("SELECT id FROM ks.t WHERE k = 1", is_idempotent=True)
    unsafe = SimpleStatement("UPDATE ks.c SET n = n + 1 WHERE k = 1")
    assert policy.on_read_timeout(read, q, 2, 1, True, 0) == (RetryPolicy.RETRY_NEXT_HOST, q)
    assert policy.on_read_timeout(read, q, 2, 1, True, 1) == (RetryPolicy.RETHROW, None)
    assert policy.on_read_timeout(unsafe, q, 2, 1, True, 0) == (RetryPolicy.RETHROW, None)


def test_reads_whose_replicas_did_not_agree_in_time_are_run_again() -> None:
    timeout = ReadTimeout("Operation timed out - received only 2 responses.", consistency=ConsistencyLevel.ALL,
                          required_responses=3, received_responses=2)
    unavailable = Unavailable("Cannot achieve consistency level ALL", consistency=ConsistencyLevel.ALL,
                              required_replicas=3, alive_replicas=2)
    assert read_again(timeout) and read_again(unavailable)
    assert read_again(NoHostAvailable("all tried", {"127.0.0.2": timeout, "127.0.0.3": unavailable}))
    # A try that took too long (the request's time left decides whether it is run again).
    assert read_again(OperationTimedOut("client timeout"))
    # Nodes that refuse connections: the driver tried every live one already.
    assert not read_again(NoHostAvailable("all tried", {"127.0.0.2": ConnectionRefusedError(), "127.0.0.3": timeout}))
    assert not read_again(NoHostAvailable("none", {}))
    assert is_read("  select id FROM ks.t") and not is_read("INSERT INTO ks.t (k) VALUES (1)")
