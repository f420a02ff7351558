"""Activity bodies as stored JSON text, for the read side (pages and frames).

The read side splices stored texts into its answers without parsing them, so it wants
the texts, not :class:`Activity` objects: first from the Redis body cache (or what a page
script already read), then from Cassandra through the activity store. Cassandra rows are
the truth: a body missing from both is a deleted activity and is left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from hub.storage import slots
from hub.storage.activities import ActivityStore


def compact(obj: object) -> str:
    """The stored form of a JSON body (what the body cache holds)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


async def body_texts(store: ActivityStore, app: str, ids: Sequence[str],
                     cached: Mapping[str, str] | None = None) -> dict[str, str]:
    """``id -> body text`` for the ids whose activity exists and is not deleted."""
    found = {i: cached[i] for i in ids if i in cached} if cached is not None else {}
    ask = [i for i in ids if i not in found]
    if ask:
        k = store.keys(app)
        raws = await slots.mget(store.redis, [k.activity(i) for i in ask])  # by slot on a cluster
        found.update((i, raw) for i, raw in zip(ask, raws) if raw is not None)
    if len(found) < len(ids):
        missing = [i for i in ids if i not in found]
        for i, a in (await store.get_many(app, missing)).items():
            found[i] = compact(a.to_json())
    return found


async def alive_ids(store: ActivityStore, app: str, ids: Sequence[str]) -> set[str]:
    """The ids whose activity exists and is not deleted (cached bodies first, as get_many),
    without parsing the cached ones."""
    if not ids:
        return set()
    k = store.keys(app)
    cached = await slots.mget(store.redis, [k.activity(i) for i in ids])
    alive = {i for i, raw in zip(ids, cached) if raw is not None}
    missing = [i for i in ids if i not in alive]
    if missing:
        alive.update(await store.get_many(app, missing))
    return alive
