"""Pending fan-out markers: stored activities whose fan-out is not certain yet.

Intake writes one marker per group in the same Cassandra round as the group's rows. The
marker stays until the group's fan-out is certain: the planning job that intake queued
deletes it once it has queued every chunk job (hub/ops/fanout.py), and intake deletes it
itself only when it queued no job (nothing to fan out). Whatever else happens (Redis
down before the job was queued, a job that failed for good, a job that ran before the
rows it names were stored) leaves the marker, and the worker's sweep queues its fan-out
again until one run finishes it (workers/jobs/fanout.py).

A marker is named by an id of its own try (the smallest id that try gave its
activities), never by an id that an earlier try of the same foreign id gave: a retry
that stands for an earlier try's activity writes a marker of its own, with its own job
id, so nothing the earlier try's marker or job did can cancel it. Markers live in one
partition per app and minute, so the sweep reads one partition per minute it looks back.

A marker is a single cell: it is written with UPDATE, which in Cassandra 2.1 adds no row
marker, so deleting the ``ids`` cell removes the row. A row delete would be a range
tombstone, and 2.1 makes each new one in a partition dearer than the last: 12,000
insert-and-delete pairs in one partition cost the node 0.51 to 0.59 ms of CPU a pair as
row deletes and 0.39 to 0.41 ms as cell deletes, and reading the partition back took 63
against 12 ms (docs/benchmarks.md, Intake). Under load thousands of markers a minute are
deleted in one partition; the sweep's few whole-row deletes go through :meth:`swept`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hub.storage.cassandra import Cassandra


def minute_bucket(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 60)


@dataclass(frozen=True)
class MarkerRef:
    """Where a marker is, as a planning job carries it: plain JSON ``[minute, id, row]``.
    ``row``: delete the whole row (a marker the sweep found, which an older hub may have
    written with INSERT) rather than the cell."""

    minute: int
    id: str
    row: bool = False

    def to_json(self) -> list[Any]:
        return [self.minute, self.id, self.row]

    @classmethod
    def from_json(cls, raw: Sequence[Any] | None) -> MarkerRef | None:
        if not raw:
            return None
        return cls(int(raw[0]), str(raw[1]), bool(raw[2]) if len(raw) > 2 else False)


@dataclass(frozen=True)
class PendingBatch:
    minute: int
    id: str  # the marker's name: an id of the try that wrote it
    ids: tuple[str, ...]  # the activities whose fan-out it stands for

    @property
    def ref(self) -> MarkerRef:
        return MarkerRef(self.minute, self.id, row=True)


class PendingMarkers:
    def __init__(self, db: Cassandra) -> None:
        self.db = db

    async def mark(self, app: str, minute: int, ids: Sequence[str], *, name: str | None = None) -> str:
        """One marker naming these ids, called ``name`` (default: the smallest id);
        returns its name. Writing it again with more ids replaces the list."""
        ordered = sorted(set(ids))
        name = ordered[0] if name is None else name
        await self.db.execute(
            "UPDATE {ks}.pending_fanout SET ids = %s WHERE app = %s AND minute = %s AND id = %s",
            (json.dumps(ordered), app, minute, name),
        )
        return name

    async def queued(self, app: str, minute: int, *markers: str) -> None:
        """The markers' fan-out is certain: their cells go, and with them their rows."""
        await asyncio.gather(*(
            self.db.execute("DELETE ids FROM {ks}.pending_fanout WHERE app = %s AND minute = %s AND id = %s",
                            (app, minute, m))
            for m in markers
        ))

    async def swept(self, app: str, minute: int, marker: str) -> None:
        """A marker the sweep found is done with. A whole-row delete: it also removes a
        marker that an older hub wrote with INSERT, whose row marker would outlive a cell
        delete, so the sweep would queue it again every time."""
        await self.db.execute("DELETE FROM {ks}.pending_fanout WHERE app = %s AND minute = %s AND id = %s",
                              (app, minute, marker))

    async def done(self, app: str, ref: MarkerRef) -> None:
        """The fan-out that ``ref`` stands for is certain."""
        if ref.row:
            await self.swept(app, ref.minute, ref.id)
        else:
            await self.queued(app, ref.minute, ref.id)

    async def read(self, app: str, minutes: Iterable[int]) -> list[PendingBatch]:
        async def one(m: int) -> list[PendingBatch]:
            rows = await self.db.execute(
                "SELECT id, ids FROM {ks}.pending_fanout WHERE app = %s AND minute = %s", (app, m)
            )
            return [PendingBatch(m, r.id, tuple(json.loads(r.ids)) if r.ids else (r.id,)) for r in rows]

        return [p for part in await asyncio.gather(*(one(m) for m in minutes)) for p in part]
