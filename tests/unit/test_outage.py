"""Which driver errors are an outage (503, a job retry) and which are bugs, and the
outage log's two lines (hub/storage/outage.py)."""

from __future__ import annotations

import logging

import pytest
from cassandra import InvalidRequest
from cassandra.connection import ConnectionBusy
from cassandra.protocol import (
    IsBootstrappingErrorMessage,
    OverloadedErrorMessage,
    ServerError,
    SyntaxException,
)

from hub.storage import cassandra
from hub.storage.outage import DEPENDENCY_DOWN, OutageLog, as_unavailable

# What a broken or busy node answers (cassandra.protocol's error replies that the driver
# does not turn into the ``cassandra`` exceptions), and a connection with no free stream.
BROKEN_NODE = [
    ServerError(0x0000, "java.lang.RuntimeException: broken", None),
    OverloadedErrorMessage(0x1001, "overloaded", None),
    IsBootstrappingErrorMessage(0x1002, "bootstrapping", None),
    ConnectionBusy("no stream available"),
]


@pytest.mark.parametrize("exc", BROKEN_NODE, ids=lambda e: type(e).__name__)
def test_a_broken_node_is_an_outage(exc: Exception) -> None:
    assert isinstance(exc, DEPENDENCY_DOWN)  # the web layer answers 503
    assert isinstance(exc, cassandra._DRIVER_ERRORS)  # storage raises Unavailable: 503, a job retry
    assert "Cassandra does not answer" in as_unavailable(exc).message


@pytest.mark.parametrize("exc", [InvalidRequest("bad"), SyntaxException(0x2000, "bad", None)],
                         ids=lambda e: type(e).__name__)
def test_a_malformed_statement_is_a_bug(exc: Exception) -> None:
    assert not isinstance(exc, DEPENDENCY_DOWN)
    assert not isinstance(exc, cassandra._DRIVER_ERRORS)


def test_an_outage_is_two_lines(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.outage")
    caplog.set_level(logging.INFO, logger="tests.outage")
    outage = OutageLog("Redis (test)", logger)
    for _ in range(50):
        outage.failed(ConnectionError("refused"))
    assert outage.down
    outage.recovered()
    outage.recovered()
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.outage"]
    assert len(messages) == 2, messages
    assert "Redis (test) is unavailable" in messages[0] and "50 failures" in messages[1]
