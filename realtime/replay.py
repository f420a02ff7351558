"""What a ``subscribe`` with ``since`` missed: the feed's change log after that cursor.

The log (hub/storage/changes.py) names the ids each change touched, not their content.
An id changed several times is answered once, at its newest change: as the entry it is
now (``missed``, in the order of those newest changes), or, if it is gone, as a
``deleted`` frame carrying that change's cursor. A log that no longer reaches back to
``since`` (trimmed, or more than ``limit`` changes) is not replayed: ``complete`` is
false and the client reloads the feed.

``cursor`` is where the replay ends: the live frames the gateway held back meanwhile are
sent only when newer, so nothing is lost or doubled across the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub.storage.changes import ChangeLog
from realtime.conn import dumps
from realtime.frames import FeedView


@dataclass(frozen=True, slots=True)
class Missed:
    complete: bool
    cursor: str  # the newest cursor covered ("" when the log holds none)
    entries: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[bytes] = field(default_factory=list)  # "deleted" frames, serialised


async def replay(changelog: ChangeLog, view: FeedView, app: str, feed: str, since: str | None, newest: str,
                 limit: int) -> Missed:
    """The changes of ``feed`` after ``since`` (none asked for: ``newest``, the log's end)."""
    if since is None:
        return Missed(complete=True, cursor=newest)
    rep = await changelog.replay(app, feed, since, limit)
    if not rep.complete:
        return Missed(complete=False, cursor=rep.last)
    newest_change: dict[str, str] = {}  # id -> cursor of its newest change, oldest first
    for ch in rep.changes:
        for i in ch.ids:
            newest_change.pop(i, None)
            newest_change[i] = ch.cursor
    current = await view.entries(app, feed, list(newest_change)) if newest_change else {}
    entries: list[dict[str, Any]] = []
    deleted: list[bytes] = []
    for i, change_cursor in newest_change.items():
        if i in current:
            entries.append(current[i])
        else:
            deleted.append(dumps({"op": "deleted", "feed": feed, "ids": [i], "cursor": change_cursor}))
    return Missed(complete=True, cursor=rep.changes[-1].cursor if rep.changes else since,
                  entries=entries, deleted=deleted)
