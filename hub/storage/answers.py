"""Webhook answers kept in Cassandra, so that replay protection survives Redis.

Redis holds the answer to every ``webhook-id`` for 10 minutes (web/gate.py), and is where
a repeat is looked up. A Redis flush or restart loses those records, and a repeat would
run again (an activity without ``foreign_id`` stored twice). So each answer is also
written here, with the same 10-minute TTL, and read only while Redis may lack records:
for 10 minutes after Redis was found empty of them, and only if this app answered
anything in the 10 minutes before (:meth:`WebhookAnswers.recent`), so a fresh Redis under
a fresh deployment costs nothing.

``webhook_answers``: one partition per answer, read by key. ``webhook_recent``: one cell
per app, rewritten (with a TTL a little longer than the answers') at most every
:data:`TOUCH_EVERY` seconds by each process that answers: present means an answer of the
app may still be on record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.storage.cassandra import Cassandra

log = logging.getLogger(__name__)

ANSWER_TTL = 600
TOUCH_EVERY = 10.0
# An answer given just after a touch is covered until that touch expires.
RECENT_TTL = ANSWER_TTL + int(TOUCH_EVERY) + 50


class WebhookAnswers:
    """The durable copy of webhook answers. ``touched``: by app, when this process last
    wrote ``webhook_recent`` (shared by the process's requests)."""

    def __init__(self, db: Cassandra, touched: dict[str, float]) -> None:
        self.db = db
        self.touched = touched

    async def keep(self, app: str, webhook_id: str, record: str) -> None:
        """The answer ``record`` (the JSON Redis keeps) for 10 minutes, and the app's
        recent mark when it is due."""
        writes = [self.db.execute(
            "INSERT INTO {ks}.webhook_answers (app, webhook_id, record) VALUES (%s, %s, %s) USING TTL %s",
            (app, webhook_id, record, ANSWER_TTL),
        )]
        now = time.monotonic()
        if now - self.touched.get(app, -TOUCH_EVERY) >= TOUCH_EVERY:
            self.touched[app] = now
            writes.append(self.db.execute(
                "UPDATE {ks}.webhook_recent USING TTL %s SET at = %s WHERE app = %s", (RECENT_TTL, int(time.time()), app)
            ))
        try:
            await asyncio.gather(*writes)
        except BaseException:
            self.touched.pop(app, None)  # written again by the next answer
            raise

    async def forget(self, app: str, webhook_id: str) -> None:
        """An answer written with its work that was not the answer sent (a 5xx followed)."""
        await self.db.execute("DELETE FROM {ks}.webhook_answers WHERE app = %s AND webhook_id = %s", (app, webhook_id))

    async def find(self, app: str, webhook_id: str) -> tuple[str, int] | None:
        """The kept record and its remaining seconds, if this ``webhook-id`` was answered."""
        rows = await self.db.execute(
            "SELECT record, TTL(record) AS ttl FROM {ks}.webhook_answers WHERE app = %s AND webhook_id = %s",
            (app, webhook_id),
        )
        return (rows[0].record, int(rows[0].ttl or 1)) if rows else None

    async def recent(self, app: str) -> bool:
        """Whether the app may have answers on record (it answered in the last 10 minutes)."""
        return bool(await self.db.execute("SELECT at FROM {ks}.webhook_recent WHERE app = %s", (app,)))


@dataclass
class PendingAnswer:
    """A signed call's answer, made durable in the Cassandra round that stores its work
    (hub/ops/intake.py), so the hot path has no round of its own for it. ``render``: the
    kept record of the answer to a result; ``written``: the record on file so far, which
    the caller compares with its real answer (and writes that if they differ)."""

    answers: WebhookAnswers
    app: str
    webhook_id: str
    render: Callable[[Any], str]
    written: str | None = None
    # Its work is idempotent by itself: every activity has a foreign_id, so a repeat run
    # again answers the same ids, byte for byte (hub/storage/foreignids.py). No record.
    idempotent: bool = False

    async def write(self, result: Any) -> None:
        """Never raises: a failed write leaves ``written`` as it was (the caller writes)."""
        record = self.render(result)
        if record == self.written:
            return
        try:
            await self.answers.keep(self.app, self.webhook_id, record)
        except Exception as e:
            log.warning("answer to %s/%s not kept with its work: %s", self.app, self.webhook_id, e)
        else:
            self.written = record
