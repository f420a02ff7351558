"""Pending fan-out markers: stored activities whose fan-out jobs may not be queued yet.

Intake writes one marker per group in the same Cassandra round as the group's rows, and
deletes it once the group's job is queued; the worker's sweep queues whatever a marker
still names after a while (workers/jobs/fanout.py). Markers live in one partition per app
and minute, so the sweep reads one partition per minute it looks back.

A marker is a single cell: it is written with UPDATE, which in Cassandra 2.1 adds no row
marker, so deleting the ``ids`` cell removes the row. A row delete would be a range
tombstone, and 2.1 makes each new one in a partition dearer than the last: 12,000
insert-and-delete pairs in one partition cost the node 0.51 to 0.59 ms of CPU a pair as
row deletes and 0.39 to 0.41 ms as cell deletes, and reading the partition back took 63
against 12 ms (docs/benchmarks.md, Intake). Under load intake deletes thousands of
markers a minute in one partition; the sweep deletes few.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hub.storage.cassandra import Cassandra


def minute_bucket(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 60)


@dataclass(frozen=True)
class PendingBatch:
    minute: int
    id: str  # the marker: the batch's smallest activity id
    ids: tuple[str, ...]


class PendingMarkers:
    def __init__(self, db: Cassandra) -> None:
        self.db = db

    async def mark(self, app: str, minute: int, ids: Sequence[str]) -> str:
        """One marker naming these ids; its id (the smallest) is returned."""
        ordered = sorted(set(ids))
        await self.db.execute(
            "UPDATE {ks}.pending_fanout SET ids = %s WHERE app = %s AND minute = %s AND id = %s",
            (json.dumps(ordered), app, minute, ordered[0]),
        )
        return ordered[0]

    async def queued(self, app: str, minute: int, *markers: str) -> None:
        """The markers' fan-out jobs are queued: their cells go, and with them their rows."""
        await asyncio.gather(*(
            self.db.execute("DELETE ids FROM {ks}.pending_fanout WHERE app = %s AND minute = %s AND id = %s",
                            (app, minute, m))
            for m in markers
        ))

    async def swept(self, app: str, minute: int, marker: str) -> None:
        """The sweep queued this marker's fan-out. A whole-row delete: it also removes a
        marker that an older hub wrote with INSERT, whose row marker would outlive a cell
        delete, so the sweep would queue it again every time."""
        await self.db.execute("DELETE FROM {ks}.pending_fanout WHERE app = %s AND minute = %s AND id = %s",
                              (app, minute, marker))

    async def read(self, app: str, minutes: Iterable[int]) -> list[PendingBatch]:
        async def one(m: int) -> list[PendingBatch]:
            rows = await self.db.execute(
                "SELECT id, ids FROM {ks}.pending_fanout WHERE app = %s AND minute = %s", (app, m)
            )
            return [PendingBatch(m, r.id, tuple(json.loads(r.ids)) if r.ids else (r.id,)) for r in rows]

        return [p for part in await asyncio.gather(*(one(m) for m in minutes)) for p in part]
