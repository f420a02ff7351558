"""Foreign ids: the first try of an activity wins, and every later try repeats it.

Two records, for two jobs:

- A claim in Redis (``SET NX GET``) serialises the tries that run at the same time, and
  says how far the claiming try got: ``<id>?`` while it is being stored, ``<id>`` once
  its rows and its pending fan-out marker are durable, ``<id>!`` when it failed (answered
  503) before that. A later try that finds a confirmed claim knows the fan-out of that
  activity is taken care of; one that finds a pending claim waits a little for it (the
  first try may be about to confirm); one that finds a failed claim need not wait: it
  settles the earlier try at once (hub/storage/activities.py).
- The ``foreign_ids`` table in Cassandra has a row per try, ``(foreign_id, id)``; the
  smallest id, the earliest try, is the activity. It is the durable answer when Redis
  lost a claim (flush, eviction, or its TTL). Each try writes its row together with the
  activity's other rows and reads the table in the same round, so a request waits for
  one Cassandra round trip, not two; a try that finds an earlier id takes its own rows
  back (hub/storage/activities.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis

from hub.domain.models import Activity
from hub.storage import scripts
from hub.storage.cassandra import Cassandra
from hub.storage.redis import Keys

# Claims are a fast path only (Cassandra has the durable record); a day covers retries.
CLAIM_TTL = 86400
_PENDING = "?"
_FAILED = "!"
_POLL = 0.02


INSERT = "INSERT INTO {ks}.foreign_ids (app, foreign_id, id) VALUES (%s, %s, %s)"
# The earliest try (ids sort by time, and the table's rows by id).
_FIRST = "SELECT id FROM {ks}.foreign_ids WHERE app = %s AND foreign_id = %s LIMIT 1"
_FIRST_BELOW = "SELECT id FROM {ks}.foreign_ids WHERE app = %s AND foreign_id = %s AND id < %s LIMIT 1"


@dataclass(frozen=True)
class Claim:
    id: str  # the activity id an earlier try claimed
    confirmed: bool  # its rows and pending marker are durable
    # Not worth waiting for: its try failed (``<id>!``), or it was waited for already.
    final: bool = False


def parse_claim(raw: Any) -> Claim | None:
    """What a ``SET NX GET`` of a claim found: None when it was free (this try has it)."""
    if raw is None:
        return None
    value = raw.decode() if isinstance(raw, bytes) else str(raw)
    if value.endswith(_PENDING):
        return Claim(value[:-1], False)
    if value.endswith(_FAILED):
        return Claim(value[:-1], False, final=True)
    return Claim(value, True)


def pending_claims(k: Keys, claims: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The Redis key and pending value of each ``(foreign_id, id)`` claim, for a caller that
    makes them in a round trip it already has: ``SET key value NX GET EX CLAIM_TTL`` each,
    read back with :func:`parse_claim`."""
    return [(k.foreign_id(fid), aid + _PENDING) for fid, aid in claims]


class ForeignIds:
    def __init__(self, db: Cassandra, redis: Redis) -> None:
        self.db = db
        self.redis = redis
        self._fail = redis.register_script(scripts.CLAIMS_FAIL)

    async def claim(self, k: Keys, claims: Sequence[tuple[str, str]]) -> list[Claim | None]:
        """Claim each ``(foreign_id, id)``, pending: None where this try got the claim,
        else the earlier try's claim."""
        if not claims:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for key, value in pending_claims(k, claims):
            pipe.set(key, value, nx=True, get=True, ex=CLAIM_TTL)
        return [parse_claim(raw) for raw in await pipe.execute()]

    async def stand_ins(
        self, k: Keys, activities: Sequence[Activity], claimed: Mapping[str, Claim | None]
    ) -> tuple[dict[str, Activity], dict[str, Claim]]:
        """The activity that stands for each foreign id (the one that won its claim, else
        the first given), and the earlier try's claim where none of ours won."""
        first: dict[str, Activity] = {}
        won: dict[str, Activity] = {}
        found: dict[str, Claim] = {}
        for a in activities:
            if a.foreign_id is None:
                continue
            first.setdefault(a.foreign_id, a)
            if a.id in claimed:
                claim = claimed[a.id]
                if claim is None:
                    won.setdefault(a.foreign_id, a)
                else:
                    found.setdefault(a.foreign_id, claim)
        todo = [f for f in first if f not in won and f not in found]
        for f, claim in zip(todo, await self.claim(k, [(f, first[f].id) for f in todo])):
            if claim is None:
                won[f] = first[f]
            else:
                found[f] = claim
        chosen = {f: won.get(f, a) for f, a in first.items()}
        return chosen, {f: c for f, c in found.items() if f not in won}

    def confirm(self, pipe: Any, k: Keys, stored: Sequence[tuple[str, str]]) -> None:
        """Queue on ``pipe``: these ``(foreign_id, id)`` are durable with their marker."""
        for fid, aid in stored:
            pipe.set(k.foreign_id(fid), aid, ex=CLAIM_TTL)

    async def failed(self, k: Keys, claims: Sequence[tuple[str, str]]) -> None:
        """Mark this try's still pending claims ``(foreign_id, id)`` failed, so that a
        retry settles the try at once instead of waiting for a confirmation that will
        never come. Best effort (Redis may be what failed): never raises; a claim left
        pending only makes a retry wait for it."""
        if not claims:
            return
        pending = pending_claims(k, claims)
        try:
            await self._fail(keys=[key for key, _ in pending],
                             args=[v for _, value in pending for v in (value, value[:-1] + _FAILED)])
        except Exception:  # the failure being answered (503) is the one that matters
            pass

    async def wait_confirmed(self, k: Keys, fid: str, claim: Claim, timeout: float) -> Claim:
        """The claim once its try confirms it or fails, or as it stands after ``timeout``
        seconds (its try died or is slow; a claim that vanished counts as unconfirmed).
        What is returned is ``final``: it is not waited for again."""
        deadline = time.monotonic() + timeout
        while not claim.confirmed and not claim.final and time.monotonic() < deadline:
            await asyncio.sleep(_POLL)
            now = parse_claim(await self.redis.get(k.foreign_id(fid)))
            if now is not None and now.id == claim.id:
                claim = now
        return replace(claim, final=True)

    async def first_ids(self, app: str, tries: Mapping[str, str | None]) -> dict[str, str]:
        """The durable id of each foreign id's earliest try, among the ids below the one
        ``tries`` gives for it (all of them where that is None): one single-partition read
        per foreign id, all at once, each routed to a replica of its partition.

        Below our own id: intake reads the table while it writes its own row there, and on
        a cluster a quorum read that meets that write on one replica and not yet on the
        other sees their digests differ. Cassandra 2.1 then resolves the difference in a
        repair round that waits for every replica it contacted, a dead one too until gossip
        convicts it: seconds, while a node is down (docs/scaling.md, One node down). Our
        row is outside the slice read, so it never makes the replicas differ. Point reads,
        not one multi-partition ``IN``, so that a slow partition delays only its own read,
        which is run again alone (hub/storage/retry.py)."""
        results = await asyncio.gather(*(
            self.db.execute(_FIRST, (app, f)) if below is None else self.db.execute(_FIRST_BELOW, (app, f, below))
            for f, below in tries.items()
        ))
        return {f: rows[0].id for f, rows in zip(tries, results) if rows}
