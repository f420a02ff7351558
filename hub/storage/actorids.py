"""Activity ids of many actors in one query (feed rebuilds, hub/ops/rebuild.py).

Kept apart from :mod:`hub.storage.activities` (the write path): this is one read the
rebuild needs, and its CQL belongs with the storage layer.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.storage.cassandra import Cassandra

_ALL_IDS = "SELECT actor, id FROM {ks}.user_activities WHERE app = %s AND actor IN %s LIMIT %s"


async def actors_ids(db: Cassandra, app: str, actors: Sequence[str], cap: int) -> list[tuple[str, str]]:
    """``(actor, activity id)`` of these actors, at most ``cap`` rows in all (any order
    across actors). Fewer than ``cap`` rows means every id of theirs is there."""
    rows = await db.execute(_ALL_IDS, (app, list(actors), cap))
    return [(r.actor, r.id) for r in rows]
