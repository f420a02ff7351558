"""Replay protection survives Redis (issue 18): the answer to a ``webhook-id`` is kept in
Cassandra too, so a repeat after Redis lost its data (here: every key of this run's
prefix deleted, a flush as far as the hub can tell; the shared Redis is never flushed)
gets the first answer back byte for byte and nothing is stored twice."""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timezone
from typing import Any

from hub.config import Settings
from hub.core import Hub
from hub.storage.answers import WebhookAnswers
from tests.conftest import sign, uid

APP = "t1"


async def post(client: Any, settings: Settings, payload: object, msg_id: str, ts: int) -> tuple[int, bytes, str]:
    app = settings.apps[APP]
    body = json.dumps(payload).encode()
    r = await client.post(f"/v1/apps/{APP}/activities", data=body, headers=sign(app, body, msg_id, ts))
    return r.status, await r.read(), r.headers.get("Content-Type", "")


async def lose_redis(settings: Settings, redis: Any) -> None:
    """Every key of this run's prefix gone: what a FLUSHALL does to the hub's keys."""
    keys = [k async for k in redis.scan_iter(match=f"{settings.redis.key_prefix}:*", count=1000)]
    for i in range(0, len(keys), 500):
        await redis.delete(*keys[i : i + 500])


async def test_a_repeat_after_redis_lost_its_records_gets_the_first_answer(
    client: Any, settings: Settings, hub: Hub, redis: Any
) -> None:
    actor = uid("replay")
    act = {"actor": actor, "verb": "post", "object": f"note:{uid('n')}"}  # no foreign_id
    bad = {"actor": actor, "verb": "post"}  # a 400, kept and repeated like any answer
    msg, msg_bad, ts = "msg_" + secrets.token_hex(8), "msg_" + secrets.token_hex(8), int(time.time())
    first = await post(client, settings, act, msg, ts)
    first_bad = await post(client, settings, bad, msg_bad, ts)
    assert first[0] == 202 and first_bad[0] == 400, (first, first_bad)
    stored = json.loads(first[1])["activities"][0]["id"]

    await lose_redis(settings, redis)
    assert await post(client, settings, act, msg, ts) == first
    assert await post(client, settings, bad, msg_bad, ts) == first_bad
    assert await hub.activities.user_activity_ids(APP, actor, 10) == [stored]
    # The record is back in Redis: the next repeat does not need Cassandra.
    assert await redis.get(hub.activities.keys(APP).webhook(msg)) is not None

    # A restart that loses the records again: still the first answer.
    await lose_redis(settings, redis)
    assert await post(client, settings, act, msg, ts) == first
    # New webhook-ids meanwhile are answered and stored, once each.
    other = {**act, "object": f"note:{uid('n')}"}
    msg2 = "msg_" + secrets.token_hex(8)
    second = await post(client, settings, other, msg2, ts)
    assert second[0] == 202
    assert await post(client, settings, other, msg2, ts) == second
    assert len(await hub.activities.user_activity_ids(APP, actor, 10)) == 2


async def test_a_redis_without_records_of_an_app_that_answered_nothing_lately_is_trusted(
    client: Any, settings: Settings, hub: Hub, redis: Any
) -> None:
    """No answer of the app in the last 10 minutes: an empty Redis has lost nothing, and
    from then on a new webhook-id costs no Cassandra read."""
    await hub.db.execute("DELETE FROM {ks}.webhook_recent WHERE app = %s", ("t2",))
    app = settings.apps["t2"]
    keys = hub.activities.keys("t2")
    await redis.delete(keys.complete_since())
    body = json.dumps({"actor": uid("a"), "verb": "post", "object": "note:1"}).encode()
    r = await client.post("/v1/apps/t2/activities", data=body, headers=sign(app, body))
    assert r.status == 202, await r.text()
    since = float(await redis.get(keys.complete_since()))
    assert since <= time.time() - 600 + 5  # complete, as if for the last 10 minutes
    assert await WebhookAnswers(hub.db, {}).recent("t2")  # that answer is on record now


async def test_the_answer_written_with_the_work_is_the_answer_sent(
    client: Any, settings: Settings, hub: Hub, redis: Any
) -> None:
    """Intake writes the answer in its Cassandra round, predicted before the round: the
    record on file is the one kept in Redis. A post whose every activity has a foreign id
    gets no record: run again, it answers the same ids byte for byte, also when Redis
    forgot the claims (the earlier try's id is found in Cassandra)."""
    actor, fid, ts = uid("a"), uid("fid"), int(time.time())
    act = {"actor": actor, "verb": "post", "object": "note:1", "foreign_id": fid}
    batch = {"activities": [act, {**act, "foreign_id": None}, act]}
    msg1, msg2 = "msg_" + secrets.token_hex(8), "msg_" + secrets.token_hex(8)
    first = await post(client, settings, batch, msg1, ts)
    assert first[0] == 202, first
    on_file = await WebhookAnswers(hub.db, {}).find(APP, msg1)
    assert on_file is not None and on_file[0] == await redis.get(hub.activities.keys(APP).webhook(msg1))
    first_id = json.loads(first[1])["activities"][0]["id"]

    # Redis forgets the claim only: the next try's own id is taken back after the round.
    await redis.delete(hub.activities.keys(APP).foreign_id(fid))
    again = await post(client, settings, act, msg2, ts)
    assert json.loads(again[1])["activities"][0]["id"] == first_id
    assert await WebhookAnswers(hub.db, {}).find(APP, msg2) is None  # idempotent by foreign id

    await lose_redis(settings, redis)
    assert await post(client, settings, batch, msg1, ts) == first
    assert await post(client, settings, act, msg2, ts) == again
    assert len(await hub.activities.user_activity_ids(APP, actor, 10)) == 2


async def test_intake_writes_the_answer_in_its_round(hub: Hub) -> None:
    """No round of its own: the record is on file when ``accept`` returns, rendered from
    exactly what it returns."""
    from hub.domain.activity import ActivityInput
    from hub.ops.intake import Intake
    from hub.storage.answers import PendingAnswer

    accepting = Intake(hub)
    try:
        now = datetime.now(timezone.utc)
        inputs = [ActivityInput(actor=uid("a"), verb="post", object="note:1", foreign_id=f, time=now)
                  for f in (uid("f"), None)]
        incoming = accepting.prepare(APP, inputs, batch=True)
        found = [await hub.redis.set(k, v, nx=True, get=True, ex=incoming.claim_ttl) for k, v in incoming.claims]
        msg = "msg_" + secrets.token_hex(8)
        pending = PendingAnswer(WebhookAnswers(hub.db, {}), APP, msg, json.dumps)
        results = await accepting.accept(incoming, found, answer=pending)
    finally:
        await accepting.close()
    assert pending.written == json.dumps(results)
    on_file = await WebhookAnswers(hub.db, {}).find(APP, msg)
    assert on_file is not None and on_file[0] == json.dumps(results)
