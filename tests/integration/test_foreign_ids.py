"""A foreign_id is stored once, whatever happened to the tries before (hub/storage/foreignids.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from hub.core import Hub
from hub.domain.activity import ActivityInput
from hub.errors import Unavailable
from hub.ops import intake
from hub.queue import FANOUT, HIGH, queue_name
from hub.storage import activities
from tests.conftest import uid

APP = "t1"


def like(actor: str, fid: str, obj: str = "photo:1") -> ActivityInput:
    return ActivityInput(actor=actor, verb="like", object=obj, time=datetime.now(timezone.utc), foreign_id=fid)


async def post(hub: Hub, inp: ActivityInput) -> str:
    (answer,) = await intake.accept(hub, APP, [inp], batch=False)
    assert answer["foreign_id"] == inp.foreign_id
    return str(answer["id"])


async def claim_value(hub: Hub, fid: str) -> str | None:
    raw = await hub.redis.get(hub.activities.keys(APP).foreign_id(fid))
    return raw.decode() if isinstance(raw, bytes) else raw


async def job_queued(hub: Hub, activity_id: str) -> bool:
    """A planning job for ``activity_id`` is queued (named after its try's marker)."""
    jobs = await hub.queue.queued_jobs(queue_name=queue_name(hub.settings.redis, HIGH))
    return any(j.function == FANOUT and activity_id in j.args[1] for j in jobs)


async def test_a_retry_repeats_the_first_answer_and_queues_nothing(hub: Hub) -> None:
    alice, fid = uid("alice"), uid("like")
    first = await post(hub, like(alice, fid))
    assert await claim_value(hub, fid) == first  # confirmed
    # Its job (named after its marker, which is named after it) is taken off the queue.
    await hub.redis.delete(f"arq:job:fanout:{APP}:{first}")
    await hub.redis.zrem(queue_name(hub.settings.redis, HIGH), f"fanout:{APP}:{first}")
    assert await post(hub, like(alice, fid)) == first
    assert not await job_queued(hub, first)  # its first try's fan-out was certain
    assert await hub.activities.user_activity_ids(APP, alice, 10) == [first]


async def test_concurrent_tries_store_one_activity(hub: Hub) -> None:
    alice, fid = uid("alice"), uid("like")
    ids = await asyncio.gather(*(post(hub, like(alice, fid)) for _ in range(5)))
    assert len(set(ids)) == 1
    assert await hub.activities.user_activity_ids(APP, alice, 10) == [ids[0]]


async def test_a_retry_after_redis_lost_the_claim_finds_the_first_try(hub: Hub) -> None:
    alice, fid = uid("alice"), uid("like")
    first = await post(hub, like(alice, fid))
    await hub.redis.delete(hub.activities.keys(APP).foreign_id(fid), hub.activities.keys(APP).activity(first))
    assert await post(hub, like(alice, fid)) == first
    # The retry's own rows were taken back: the actor still has one activity.
    assert await hub.activities.user_activity_ids(APP, alice, 10) == [first]
    assert await hub.activities.find_by_foreign_id(APP, fid) == first
    assert await claim_value(hub, fid) == first


async def test_a_try_that_failed_after_storing_is_fanned_out_by_its_retry(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activities, "CLAIM_WAIT", 0.2)
    alice, fid = uid("alice"), uid("like")
    # The first try claimed and wrote its rows, then failed (503) before its marker
    # landed: nothing guarantees its fan-out.
    first = like(alice, fid).with_id(hub.ids.new())
    await hub.activities.foreign_ids.claim(hub.activities.keys(APP), [(fid, first.id)])
    await hub.activities._write(APP, [first])
    assert await claim_value(hub, fid) == f"{first.id}?"
    assert await post(hub, like(alice, fid)) == first.id
    assert await job_queued(hub, first.id)
    assert await claim_value(hub, fid) == first.id
    assert await hub.activities.user_activity_ids(APP, alice, 10) == [first.id]


async def test_a_claim_whose_try_stored_nothing_is_finished_under_its_id(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activities, "CLAIM_WAIT", 0.2)
    alice, fid = uid("alice"), uid("like")
    dead = hub.ids.new()  # claimed, then the process died before any row
    await hub.activities.foreign_ids.claim(hub.activities.keys(APP), [(fid, dead)])
    assert await post(hub, like(alice, fid, obj="photo:7")) == dead
    stored = await hub.activities.get_one(APP, dead)
    assert stored is not None and stored.object == "photo:7"
    assert await job_queued(hub, dead)
    assert await hub.activities.user_activity_ids(APP, alice, 10) == [dead]
    assert await hub.activities.find_by_foreign_id(APP, fid) == dead


async def test_a_deleted_activity_is_not_created_again_by_a_retry(hub: Hub) -> None:
    alice, fid = uid("alice"), uid("like")
    first = await post(hub, like(alice, fid))
    await intake.delete(hub, APP, None, fid)
    assert await post(hub, like(alice, fid)) == first
    assert await hub.activities.get_one(APP, first) is None
    assert await hub.activities.user_activity_ids(APP, alice, 10) == []


async def gate_claims(hub: Hub, incoming: intake.Incoming) -> list[object]:
    """The claims as web/gate.py makes them: SET NX GET each, in the gate's own trip."""
    return [await hub.redis.set(k, v, nx=True, get=True, ex=incoming.claim_ttl) for k, v in incoming.claims]


async def test_requests_of_one_group_sharing_a_foreign_id_answer_the_claim_winner(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waiting for a claim that only this group would confirm would take this long.
    monkeypatch.setattr(activities, "CLAIM_WAIT", 30.0)
    alice, fid = uid("alice"), uid("like")
    accepting = intake.Intake(hub)
    try:
        first = accepting.prepare(APP, [like(alice, fid)], batch=False)
        second = accepting.prepare(APP, [like(alice, fid)], batch=False)
        # The second request won the claim; the first saw it pending and waits for it
        # before joining a group (a group waits for no claim), so it is not stuck behind
        # a group that only its own group would let go.
        won, lost = await gate_claims(hub, second), await gate_claims(hub, first)
        assert won == [None] and lost == [second.activities[0].id + "?"]
        answers = await asyncio.wait_for(
            asyncio.gather(accepting.accept(first, lost), accepting.accept(second, won)), timeout=10
        )
        assert accepting.groups.groups == 2
    finally:
        await accepting.close()
    winner = second.activities[0].id
    assert [a[0]["id"] for a in answers] == [winner, winner]
    assert await hub.activities.user_activity_ids(APP, alice, 10) == [winner]
    assert await job_queued(hub, winner)
    assert await claim_value(hub, fid) == winner


async def test_a_request_whose_claim_found_an_earlier_try_repeats_it(hub: Hub) -> None:
    alice, fid = uid("alice"), uid("like")
    first = await post(hub, like(alice, fid))
    accepting = intake.Intake(hub)
    try:
        retry = accepting.prepare(APP, [like(alice, fid)], batch=False)
        found = await gate_claims(hub, retry)
        assert found == [first]
        (answer,) = await accepting.accept(retry, found)
    finally:
        await accepting.close()
    assert answer["id"] == first
    assert await hub.activities.user_activity_ids(APP, alice, 10) == [first]


async def test_a_try_that_fails_marks_its_claim_failed_and_its_retry_does_not_wait(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activities, "CLAIM_WAIT", 30.0)  # what waiting for the failed try would cost
    alice, fid = uid("alice"), uid("like")

    async def cassandra_fails(*_args: object, **_kwargs: object) -> str:
        raise Unavailable("Cassandra: OperationTimedOut")

    with monkeypatch.context() as m:  # the first try's marker write fails: it answers 503
        m.setattr(hub.activities.markers, "mark", cassandra_fails)
        with pytest.raises(Unavailable):
            await post(hub, like(alice, fid))
    value = await claim_value(hub, fid)
    assert value is not None and value.endswith("!")  # failed, not pending
    first = value[:-1]
    started = asyncio.get_running_loop().time()
    assert await post(hub, like(alice, fid)) == first  # the first try's id
    assert asyncio.get_running_loop().time() - started < 5
    assert await job_queued(hub, first)
    assert await claim_value(hub, fid) == first  # confirmed
    assert await hub.activities.user_activity_ids(APP, alice, 10) == [first]


async def test_requests_waiting_for_earlier_tries_delay_no_other_request(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activities, "CLAIM_WAIT", 3.0)
    alice, bob = uid("alice"), uid("bob")
    # As many requests as an app has groups at a time, each finding the claim of a try
    # that died before storing anything (pending for good): inside the groups, their
    # waits would hold every group and the next request behind them.
    fids = [uid("like") for _ in range(intake.GROUP_CONCURRENCY)]
    dead = [hub.ids.new() for _ in fids]
    await hub.activities.foreign_ids.claim(hub.activities.keys(APP), list(zip(fids, dead)))
    accepting = intake.Intake(hub)
    try:
        loop = asyncio.get_running_loop()
        waiting = []
        for fid in fids:
            slow = accepting.prepare(APP, [like(alice, fid)], batch=False)
            waiting.append(asyncio.create_task(accepting.accept(slow, await gate_claims(hub, slow))))
            await asyncio.sleep(0.1)
        fast = accepting.prepare(APP, [like(bob, uid("like"))], batch=False)
        started = loop.time()
        (answer,) = await accepting.accept(fast, await gate_claims(hub, fast))
        fast_took = loop.time() - started
        slow_answers = await asyncio.gather(*waiting)
    finally:
        await accepting.close()
    assert answer["id"] == fast.activities[0].id
    assert fast_took < 1.5, fast_took  # not behind the 3 s waits
    assert [a[0]["id"] for a in slow_answers] == dead  # finished under the dead tries' ids
    for d in dead:
        assert await job_queued(hub, d)
