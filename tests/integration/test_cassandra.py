"""The asyncio bridge to cassandra-driver, against the real server."""

from __future__ import annotations

import asyncio
import gc
import secrets
import threading

import pytest
from cassandra import InvalidRequest

from hub.config import Settings
from hub.storage.cassandra import Cassandra


async def _queries(db: Cassandra, app: str) -> list[object]:
    await db.execute(
        "INSERT INTO {ks}.activities (app, id, body, deleted) VALUES (%s, %s, %s, false)", (app, "a1", "{}")
    )
    await db.batch(
        [("INSERT INTO {ks}.user_activities (app, actor, id) VALUES (%s, %s, %s)", (app, "u", f"a{i}"))
         for i in range(5)],
        logged=False,
    )
    one = await db.execute("SELECT id, body FROM {ks}.activities WHERE app = %s AND id = %s", (app, "a1"))
    paged = await db.execute(
        "SELECT id FROM {ks}.user_activities WHERE app = %s AND actor = %s", (app, "u"), fetch_size=2
    )
    return [*one, *paged]


async def test_answered_requests_leave_no_reference_cycles(settings: Settings) -> None:
    # A cycle per request is freed only by the cyclic collector, whose pauses stall the
    # event loop; reference counting must be enough for the driver's objects.
    db = await Cassandra.connect(settings.cassandra)
    app = f"gc-{secrets.token_hex(3)}"
    try:
        await _queries(db, app)  # statements prepared, connections warm
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(20):
                rows = await _queries(db, app)
            gc.collect()
            driver_garbage = [type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("cassandra")]
            row_classes = [o for o in gc.garbage if isinstance(o, type)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert driver_garbage == []
        assert row_classes == []
        assert [r.id for r in rows] == ["a1", "a4", "a3", "a2", "a1", "a0"]  # newest first
        assert rows[0].body == "{}"
        assert type(rows[1]) is type(rows[2])  # one row class per column list, across pages
    finally:
        await db.close()


async def test_statements_are_prepared_once_and_off_the_event_loop(settings: Settings) -> None:
    # The driver's prepare blocks until the node answers: on the loop's thread it would
    # stall every request of a freshly started server. The real prepare runs; the
    # wrapper only records where it ran.
    db = await Cassandra.connect(settings.cassandra)
    app = f"prep-{secrets.token_hex(3)}"
    loop_thread = threading.get_ident()
    calls: list[tuple[str, int]] = []
    real = db.session.prepare

    def recording(query: str, *args: object, **kwargs: object) -> object:
        calls.append((query, threading.get_ident()))
        return real(query, *args, **kwargs)

    db.session.prepare = recording  # type: ignore[method-assign]
    try:
        select = "SELECT id FROM {ks}.activities WHERE app = %s AND id = %s"
        results = await asyncio.gather(*(db.execute(select, (app, f"a{i}")) for i in range(5)))
        assert results == [[]] * 5
        assert len(calls) == 1
        assert calls[0][0] == f"SELECT id FROM {db.keyspace}.activities WHERE app = ? AND id = ?"
        assert calls[0][1] != loop_thread

        # A statement the node refuses fails every waiter, and is not remembered as failed.
        bad = "SELECT id FROM {ks}.no_such_table WHERE app = %s"
        failures = await asyncio.gather(*(db.execute(bad, (app,)) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(f, InvalidRequest) for f in failures), failures
        with pytest.raises(InvalidRequest):
            await db.execute(bad, (app,))
        assert [q for q, _ in calls].count(f"SELECT id FROM {db.keyspace}.no_such_table WHERE app = ?") == 2
        assert db._preparing == {}
    finally:
        await db.close()
