"""The signed app API against real Redis and Cassandra (docs/api.md: Activities, Routes, Guarantees).

Every bad input must get the status and error code of docs/api.md, never a 5xx; replay and
``foreign_id`` retries store nothing twice; a 202 means the activity is durable and its
fan-out queued; deletes leave every feed the activity reached.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.config import AppSettings, Settings
from hub.core import Hub
from hub.domain.signing import sign as sign_body
from hub.domain.tokens import verify_token
from hub.queue import HIGH, queue_name
from tests.conftest import AppCaller, sign, uid
from tests.helpers import feed_ids, wait_for

MiB = 1024 * 1024


# --- helpers ---------------------------------------------------------------------------


async def expect_error(resp: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, f"{resp.status} {text}"
    err = json.loads(text)["error"]
    assert err["code"] == code, text
    assert isinstance(err["message"], str) and err["message"]
    if field is not None:
        assert err.get("field") == field, text
    return err


def activity(actor: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"actor": actor or uid("actor"), "verb": "like", "object": "photo:1", **kw}


async def post_raw(client: Any, app: AppSettings, body: bytes, headers: dict[str, str], app_id: str | None = None) -> Any:
    return await client.post(f"/v1/apps/{app_id or app.id}/activities", data=body, headers=headers)


async def cassandra_row(hub: Hub, app: str, activity_id: str) -> Any:
    rows = await hub.db.execute("SELECT id, body, deleted FROM {ks}.activities WHERE app = %s AND id = %s",
                                (app, activity_id))
    return rows[0] if rows else None


# --- signatures ------------------------------------------------------------------------


def test_known_answer_vector() -> None:
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    got = sign_body(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _bad_headers(app: AppSettings, body: bytes) -> dict[str, dict[str, str]]:
    good = sign(app, body)
    now = int(time.time())
    other_key = AppSettings(id="x", secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()).key
    without = {name: {k: v for k, v in good.items() if k != name}
               for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    cases: dict[str, dict[str, str]] = {f"missing {n}": h for n, h in without.items()}
    cases.update({
        "garbage signature": {**good, "webhook-signature": "garbage"},
        "empty signature": {**good, "webhook-signature": ""},
        "v1 with bad base64": {**good, "webhook-signature": "v1,!!!not*base64$$"},
        "v1 with nothing": {**good, "webhook-signature": "v1,"},
        "other version only": {**good, "webhook-signature": "v1a," + good["webhook-signature"][3:]},
        "wrong secret": {**good, "webhook-signature": sign_body(other_key, good["webhook-id"], now, body),
                         "webhook-timestamp": str(now)},
        "signature of another body": {**good, "webhook-signature": sign_body(app.key, good["webhook-id"], now, body + b" "),
                                      "webhook-timestamp": str(now)},
        # The exact 300 s boundary is unit-tested with a fixed clock (test_signing.py);
        # here a margin, as this machine's clock is sometimes stepped by seconds.
        "too old": sign(app, body, ts=now - 330),
        "too new": sign(app, body, ts=now + 330),
        "non-numeric timestamp": {**good, "webhook-timestamp": "soon"},
        "float timestamp": {**good, "webhook-timestamp": f"{now}.5"},
        "negative timestamp": {**good, "webhook-timestamp": f"-{now}"},
        "huge timestamp": {**good, "webhook-timestamp": "9" * 40},
        "id with spaces": {**good, "webhook-id": "a b"},
        "id too long": {**good, "webhook-id": "m" * 300},
    })
    return cases


async def test_bad_signatures_are_401(client: Any, settings: Settings, hub: Hub) -> None:
    app = settings.apps["t1"]
    actor = uid("sig")
    body = json.dumps(activity(actor)).encode()
    for name, headers in _bad_headers(app, body).items():
        r = await post_raw(client, app, body, headers)
        await expect_error(r, 401, "bad_signature")
        assert r.status < 500, name
    assert await hub.activities.user_activity_ids("t1", actor, 10) == []
    # Within the tolerance on both sides is fine.
    now = int(time.time())
    for ts in (now - 250, now + 250):
        r = await post_raw(client, app, body, sign(app, body, ts=ts))
        assert r.status == 202, await r.text()


async def test_several_signatures_one_matching(client: Any, settings: Settings, hub: Hub) -> None:
    app = settings.apps["t1"]
    actor = uid("multi")
    body = json.dumps(activity(actor)).encode()
    h = sign(app, body)
    wrong = "v1," + base64.b64encode(secrets.token_bytes(32)).decode()
    h["webhook-signature"] = f"v1a,whatever {wrong} v1,@@@ {h['webhook-signature']}"
    r = await post_raw(client, app, body, h)
    assert r.status == 202, await r.text()
    assert len(await hub.activities.user_activity_ids("t1", actor, 10)) == 1
    # Only wrong ones: refused.
    h2 = sign(app, body)
    h2["webhook-signature"] = f"{wrong} v1a,{h2['webhook-signature'][3:]}"
    await expect_error(await post_raw(client, app, body, h2), 401, "bad_signature")


async def test_signature_of_another_app_is_refused(client: Any, settings: Settings) -> None:
    body = json.dumps(activity()).encode()
    r = await post_raw(client, settings.apps["t2"], body, sign(settings.apps["t2"], body), app_id="t1")
    await expect_error(r, 401, "bad_signature")


async def test_unknown_app_is_404(client: Any, settings: Settings) -> None:
    body = json.dumps(activity()).encode()
    r = await post_raw(client, settings.apps["t1"], body, sign(settings.apps["t1"], body), app_id="nosuchapp")
    await expect_error(r, 404, "not_found")
    r = await client.put("/v1/apps/nosuchapp/follows", data=b"{}", headers=sign(settings.apps["t1"], b"{}"))
    await expect_error(r, 404, "not_found")


# --- body size and validation ----------------------------------------------------------


async def test_body_over_1mib_is_413(client: Any, settings: Settings, hub: Hub) -> None:
    app = settings.apps["t1"]
    actor = uid("big")
    body = json.dumps(activity(actor, extra={"pad": "x" * (MiB + 10)})).encode()
    assert len(body) > MiB
    r = await post_raw(client, app, body, sign(app, body))
    await expect_error(r, 413, "too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    r = await client.post(f"/v1/apps/{app.id}/activities", data=chunks(), headers=sign(app, body))
    assert r.request_info.headers.get("Transfer-Encoding") == "chunked"
    await expect_error(r, 413, "too_large")
    # A lying Content-Length is also refused before the body is read.
    r = await client.post(f"/v1/apps/{app.id}/activities", data=b"{}",
                          headers={**sign(app, b"{}"), "Content-Length": str(MiB + 1)})
    await expect_error(r, 413, "too_large")
    assert await hub.activities.user_activity_ids("t1", actor, 10) == []


async def test_body_just_under_1mib_is_not_413(t1: AppCaller) -> None:
    # Fits the size limit, but its extra is far over 16 KiB: an activity error, not a size one.
    r = await t1.call("POST", "/activities", activity(extra={"pad": "x" * (MiB - 1000)}))
    await expect_error(r, 400, "invalid_activity", "extra")


async def test_invalid_json_is_400(client: Any, settings: Settings) -> None:
    app = settings.apps["t1"]
    for body in (b"{", b"not json", b'{"actor": "a",}', b"\xff\xfe{}", b'{"a": NaN}', b""):
        r = await post_raw(client, app, body, sign(app, body))
        await expect_error(r, 400, "invalid_json")


@pytest.mark.parametrize(("payload", "field"), [
    ({"verb": "like", "object": "photo:1"}, "actor"),
    ({"actor": "al\x00ice", "verb": "like", "object": "photo:1"}, "actor"),
    ({"actor": "alice", "verb": "li\nke", "object": "photo:1"}, "verb"),
    ({"actor": "a" * 257, "verb": "like", "object": "photo:1"}, "actor"),
    ({"actor": "", "verb": "like", "object": "photo:1"}, "actor"),
    ({"actor": 5, "verb": "like", "object": "photo:1"}, "actor"),
    ({"actor": "alice", "verb": "like"}, "object"),
    ({"actor": "alice", "verb": "like", "object": "p", "extra": {"t": "x" * (16 * 1024)}}, "extra"),
    ({"actor": "alice", "verb": "like", "object": "p", "extra": [1]}, "extra"),
    ({"actor": "alice", "verb": "like", "object": "p", "time": "yesterday"}, "time"),
    ({"actor": "alice", "verb": "like", "object": "p", "time": "2026-13-40T10:00:00Z"}, "time"),
    ({"actor": "alice", "verb": "like", "object": "p", "time": "2026-11-21T10:00:00"}, "time"),
    ({"actor": "alice", "verb": "like", "object": "p", "time": 1700000000}, "time"),
    ({"actor": "alice", "verb": "like", "object": "p", "to": ["nosuchgroup:bob"]}, "to"),
    ({"actor": "alice", "verb": "like", "object": "p", "to": "notification:bob"}, "to"),
    ({"actor": "alice", "verb": "like", "object": "p", "actr": "x"}, "actr"),
    ({"type": "Like", "object": "p"}, "actor"),
])
async def test_invalid_activity_is_400_naming_the_field(t1: AppCaller, hub: Hub, payload: dict[str, Any], field: str) -> None:
    r = await t1.call("POST", "/activities", payload)
    err = await expect_error(r, 400, "invalid_activity")
    assert err.get("field", "").startswith(field), err


async def test_body_not_an_object(t1: AppCaller) -> None:
    for payload in ([activity()], "x", 3, None):
        r = await t1.call("POST", "/activities", payload) if payload is not None else \
            await t1.client.post("/v1/apps/t1/activities", data=b"null", headers=sign(t1.app, b"null"))
        await expect_error(r, 400, "invalid_activity", "body")


async def test_batch_limits_and_item_fields(t1: AppCaller, hub: Hub) -> None:
    actor = uid("batch")
    r = await t1.call("POST", "/activities", {"activities": [activity(actor) for _ in range(101)]})
    await expect_error(r, 400, "invalid_activity", "activities")
    r = await t1.call("POST", "/activities", {"activities": []})
    await expect_error(r, 400, "invalid_activity", "activities")
    items = [activity(actor, object=f"photo:{i}") for i in range(5)]
    items[3] = {"actor": actor, "verb": "like"}
    r = await t1.call("POST", "/activities", {"activities": items})
    err = await expect_error(r, 400, "invalid_activity")
    assert err["field"].startswith("activities[3]"), err
    items[3] = activity(actor, to=["nosuchgroup:x"])
    r = await t1.call("POST", "/activities", {"activities": items})
    err = await expect_error(r, 400, "invalid_activity")
    assert err["field"].startswith("activities[3]"), err
    # A refused batch stores nothing at all.
    assert await hub.activities.user_activity_ids("t1", actor, 200) == []
    # 100 is fine, and every one is stored.
    r = await t1.call("POST", "/activities", {"activities": [activity(actor, object=f"o:{i}") for i in range(100)]})
    assert r.status == 202, await r.text()
    results = (await r.json())["activities"]
    assert len(results) == 100 and len({x["id"] for x in results}) == 100
    assert sorted(await hub.activities.user_activity_ids("t1", actor, 200)) == sorted(x["id"] for x in results)


# --- rate limit ------------------------------------------------------------------------


async def test_rate_limit_429_with_retry_after(client: Any, settings: Settings) -> None:
    slow = AppCaller(client, settings.apps["slow"])
    path = f"/users/{uid()}/followers"
    statuses = []
    limited = None
    for _ in range(8):
        r = await slow.call("GET", path)
        statuses.append(r.status)
        if r.status == 429:
            limited = r
            await expect_error(r, 429, "rate_limited")
            break
        assert r.status == 200, await r.text()
    assert limited is not None, statuses
    assert statuses.count(200) >= 3  # the burst
    retry_after = limited.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    # A rate-limited webhook-id was not consumed: the same message, retried later, is processed.
    app = settings.apps["slow"]
    body = json.dumps(activity()).encode()
    headers = sign(app, body)
    r = await post_raw(client, app, body, headers)
    if r.status == 429:
        await asyncio.sleep(int(r.headers["Retry-After"]) + 0.1)
        r = await post_raw(client, app, body, headers)
    assert r.status == 202, await r.text()


# --- replay and idempotency ------------------------------------------------------------


async def test_replayed_webhook_id_repeats_the_first_answer(client: Any, settings: Settings, hub: Hub) -> None:
    app = settings.apps["t1"]
    actor = uid("replay")
    body = json.dumps(activity(actor)).encode()  # no foreign_id: only webhook-id dedups it
    msg_id, ts = "msg_" + secrets.token_hex(8), int(time.time())
    first = await post_raw(client, app, body, sign(app, body, msg_id, ts))
    first_body = await first.read()
    assert first.status == 202, first_body
    second = await post_raw(client, app, body, sign(app, body, msg_id, ts))
    second_body = await second.read()
    assert second.status == first.status
    assert second_body == first_body
    assert second.headers["Content-Type"] == first.headers["Content-Type"]
    ids = await hub.activities.user_activity_ids("t1", actor, 10)
    assert ids == [json.loads(first_body)["activities"][0]["id"]]

    # An error answer is repeated too, and not re-run.
    bad = json.dumps({"actor": actor, "verb": "like"}).encode()
    msg2 = "msg_" + secrets.token_hex(8)
    e1 = await post_raw(client, app, bad, sign(app, bad, msg2, ts))
    e2 = await post_raw(client, app, bad, sign(app, bad, msg2, ts))
    assert e1.status == e2.status == 400
    assert await e1.read() == await e2.read()


async def test_foreign_id_is_idempotent(t1: AppCaller, hub: Hub, worker: None) -> None:
    alice, bob = uid("alice"), uid("bob")
    r = await t1.call("PUT", "/follows", {"follower": bob, "followee": alice})
    assert r.status == 204, await r.text()
    assert await feed_ids(hub, "t1", "timeline", bob) == []
    assert await feed_ids(hub, "t1", "timeline_aggregated", bob) == []
    fid = f"like:{secrets.token_hex(4)}"
    act = activity(alice, foreign_id=fid)
    r1 = await t1.call("POST", "/activities", act)
    r2 = await t1.call("POST", "/activities", act)
    assert r1.status == r2.status == 202
    (a1,), (a2,) = (await r1.json())["activities"], (await r2.json())["activities"]
    assert a1 == a2 == {"id": a1["id"], "foreign_id": fid}
    # Even in a batch, with itself twice.
    r3 = await t1.call("POST", "/activities", {"activities": [act, act]})
    assert r3.status == 202
    assert [x["id"] for x in (await r3.json())["activities"]] == [a1["id"], a1["id"]]
    assert await hub.activities.user_activity_ids("t1", alice, 10) == [a1["id"]]

    async def arrived() -> bool:
        return a1["id"] in await feed_ids(hub, "t1", "timeline", bob) and \
            a1["id"] in await feed_ids(hub, "t1", "timeline_aggregated", bob)

    assert await wait_for(arrived)
    await asyncio.sleep(0.5)  # give a duplicate fan-out the chance to show up
    assert await feed_ids(hub, "t1", "timeline", bob) == [a1["id"]]
    assert await feed_ids(hub, "t1", "timeline_aggregated", bob) == [a1["id"]]
    assert await feed_ids(hub, "t1", "user", alice) == [a1["id"]]


# --- durability ------------------------------------------------------------------------


async def test_202_means_stored_and_queued(t1: AppCaller, settings: Settings, hub: Hub) -> None:
    from workers.main import run_workers

    alice, bob = uid("alice"), uid("bob")
    r = await t1.call("PUT", "/follows", {"follower": bob, "followee": alice})
    assert r.status == 204, await r.text()
    assert await feed_ids(hub, "t1", "timeline", bob) == []
    r = await t1.call("POST", "/activities", activity(alice, extra={"n": 1}))
    assert r.status == 202, await r.text()
    aid = (await r.json())["activities"][0]["id"]
    # Durable: the row is in Cassandra itself, not only in the Redis body cache.
    row = await cassandra_row(hub, "t1", aid)
    assert row is not None and not row.deleted
    assert json.loads(row.body)["actor"] == alice
    assert await hub.activities.user_activity_ids("t1", alice, 10) == [aid]
    stored = await hub.activities.get_one("t1", aid)
    assert stored is not None and stored.actor == alice and dict(stored.extra) == {"n": 1}
    # Queued: the fan-out job is in the queue (no worker runs yet)...
    queued = await hub.queue.zscore(queue_name(settings.redis, HIGH), f"fanout:t1:{aid}")
    assert queued is not None
    # ...and a worker started now delivers it to the follower's cached timeline.
    stop = asyncio.Event()
    task = asyncio.create_task(run_workers(settings, stop=stop))
    try:
        async def arrived() -> bool:
            return aid in await hub.feeds.flat_ids("t1", f"timeline:{bob}", 100)

        assert await wait_for(arrived)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_own_and_addressed_feeds_are_written_before_the_202(
    t1: AppCaller, settings: Settings, hub: Hub
) -> None:
    """Intake writes ``user:<actor>`` and the ``to`` feeds itself; the job only does followers."""
    alice, dan = uid("alice"), uid("dan")
    assert await feed_ids(hub, "t1", "notification", dan) == []  # dan's cache is built (and empty)
    assert await feed_ids(hub, "t1", "user", alice) == []
    r = await t1.call("POST", "/activities", activity(alice, to=[f"notification:{dan}"]))
    assert r.status == 202, await r.text()
    aid = (await r.json())["activities"][0]["id"]
    # No worker runs in this test: read the caches directly, no rebuild, no wait.
    groups = await hub.feeds.groups("t1", f"notification:{dan}", 10)
    assert [m for g in groups for m in g.members] == [aid]
    assert await hub.feeds.flat_ids("t1", f"user:{alice}", 10) == [aid]
    jobs = {j.job_id: j for j in await hub.queue.queued_jobs(queue_name=queue_name(settings.redis, HIGH))}
    minute, marker, _ = jobs[f"fanout:t1:{aid}"].args[3]  # the job drops the pending marker
    assert list(jobs[f"fanout:t1:{aid}"].args) == ["t1", [aid], True, [minute, aid, False]]


# --- delete ----------------------------------------------------------------------------


async def test_concurrent_posts_of_one_foreign_id_store_one_activity(t1: AppCaller, hub: Hub) -> None:
    """Each request claims its foreign id in the gate's Lua call; requests of one group
    that share a foreign id all answer the claim winner's activity."""
    actor, fid = uid("alice"), f"like:{secrets.token_hex(4)}"
    act = activity(actor, foreign_id=fid)
    responses = await asyncio.gather(*(t1.call("POST", "/activities", act) for _ in range(8)))
    assert [r.status for r in responses] == [202] * 8
    ids = {(await r.json())["activities"][0]["id"] for r in responses}
    assert len(ids) == 1
    (the_id,) = ids
    assert await hub.activities.user_activity_ids("t1", actor, 10) == [the_id]
    assert await hub.activities.find_by_foreign_id("t1", fid) == the_id
    assert await hub.redis.get(hub.activities.keys("t1").foreign_id(fid)) == the_id  # confirmed


async def test_bad_activities_use_tokens_and_limited_posts_claim_nothing(
    client: Any, settings: Settings, hub: Hub
) -> None:
    """Activities are checked before the gate (so that their claims can ride on it), but a
    bad one still goes through it: it is rate-limited like any call. A call over the
    limit claims no foreign id."""
    slow = AppCaller(client, settings.apps["slow"])
    statuses = []
    for _ in range(8):
        r = await slow.call("POST", "/activities", {"actor": uid(), "verb": "like"})  # no object
        statuses.append(r.status)
        if r.status == 429:
            break
        await expect_error(r, 400, "invalid_activity", "object")
    assert statuses[-1] == 429, statuses
    fid = f"like:{secrets.token_hex(4)}"
    r = await slow.call("POST", "/activities", activity(foreign_id=fid))
    await expect_error(r, 429, "rate_limited")
    assert await hub.redis.get(hub.activities.keys("slow").foreign_id(fid)) is None


async def test_delete_by_id_and_by_foreign_id(t1: AppCaller, hub: Hub, worker: None) -> None:
    alice, bob, carol, dan = uid("alice"), uid("bob"), uid("carol"), uid("dan")
    for f in (bob, carol):
        r = await t1.call("PUT", "/follows", {"follower": f, "followee": alice})
        assert r.status == 204, await r.text()
    for f in (bob, carol):
        for g in ("timeline", "timeline_aggregated"):
            assert await feed_ids(hub, "t1", g, f) == []
    fid = f"post:{secrets.token_hex(4)}"
    r1 = await t1.call("POST", "/activities", activity(alice, object="photo:1", to=[f"notification:{dan}"]))
    r2 = await t1.call("POST", "/activities", activity(alice, object="photo:2", foreign_id=fid))
    r3 = await t1.call("POST", "/activities", activity(alice, object="photo:3"))
    assert r1.status == r2.status == r3.status == 202
    a1, a2, a3 = [(await r.json())["activities"][0]["id"] for r in (r1, r2, r3)]
    everything = {a1, a2, a3}

    async def feeds_hold(expected: set[str]) -> bool:
        for f in (bob, carol):
            for g in ("timeline", "timeline_aggregated"):
                if set(await feed_ids(hub, "t1", g, f)) != expected:
                    return False
        return set(await feed_ids(hub, "t1", "user", alice)) == expected

    assert await wait_for(lambda: feeds_hold(everything))
    assert await feed_ids(hub, "t1", "notification", dan) == [a1]

    r = await t1.call("DELETE", f"/activities/{a1}")
    assert r.status == 202, await r.text()
    r = await t1.call("DELETE", f"/activities?foreign_id={fid}")
    assert r.status == 202, await r.text()
    assert (await r.json())["id"] == a2
    assert await wait_for(lambda: feeds_hold({a3}))
    assert await feed_ids(hub, "t1", "notification", dan) == []
    # Gone from the sources a rebuild uses as well.
    assert await hub.activities.user_activity_ids("t1", alice, 10) == [a3]
    assert await hub.activities.get_one("t1", a1) is None
    assert (await cassandra_row(hub, "t1", a1)).deleted
    # Unknown ids and foreign_ids are 404.
    await expect_error(await t1.call("DELETE", "/activities/nosuchid"), 404, "not_found")
    await expect_error(await t1.call("DELETE", "/activities?foreign_id=nosuch:fid"), 404, "not_found")
    # Neither id nor foreign_id: a bad request, not a 5xx.
    await expect_error(await t1.call("DELETE", "/activities"), 400, "invalid_request")


# --- follows, tokens -------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "field"), [
    ({"followee": "bob"}, "follower"),
    ({"follower": "bob"}, "followee"),
    ({"follower": "", "followee": "bob"}, "follower"),
    ({"follower": "a\x01b", "followee": "bob"}, "follower"),
    ({"follower": 7, "followee": "bob"}, "follower"),
    ({"follower": "bob", "followee": "bob"}, "followee"),
    ({"follower": "al", "followee": "bob", "copy": -1}, "copy"),
    ({"follower": "al", "followee": "bob", "copy": 1001}, "copy"),
    ({"follower": "al", "followee": "bob", "copy": "10"}, "copy"),
    ({"follower": "al", "followee": "bob", "copy": True}, "copy"),
])
async def test_put_follow_validation(t1: AppCaller, hub: Hub, payload: dict[str, Any], field: str) -> None:
    r = await t1.call("PUT", "/follows", payload)
    await expect_error(r, 400, "invalid_request", field)


async def test_follow_bodies_that_are_not_objects(t1: AppCaller, client: Any, settings: Settings) -> None:
    app = settings.apps["t1"]
    for method in ("PUT", "DELETE"):
        await expect_error(await t1.call(method, "/follows", [1, 2]), 400, "invalid_request")
        body = b"{nope"
        r = await client.request(method, "/v1/apps/t1/follows", data=body, headers=sign(app, body))
        await expect_error(r, 400, "invalid_json")
    await expect_error(await t1.call("DELETE", "/follows", {"followee": "x"}), 400, "invalid_request", "follower")
    await expect_error(await t1.call("DELETE", "/follows", {"follower": "x", "followee": "y", "keep_history": "no"}),
                       400, "invalid_request", "keep_history")


async def test_follower_pages(t1: AppCaller, hub: Hub) -> None:
    star = uid("star")
    fans = sorted(uid("fan") for _ in range(7))
    for f in fans:
        r = await t1.call("PUT", "/follows", {"follower": f, "followee": star, "copy": 0})
        assert r.status == 204, await r.text()
    # Following twice is fine and adds nobody.
    assert (await t1.call("PUT", "/follows", {"follower": fans[0], "followee": star})).status == 204
    pages: list[list[str]] = []
    cursor = None
    for _ in range(5):
        path = f"/users/{star}/followers?limit=3" + (f"&cursor={cursor}" if cursor else "")
        r = await t1.call("GET", path)
        assert r.status == 200, await r.text()
        page = await r.json()
        pages.append(page["results"])
        cursor = page["next"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    seen = [u for p in pages for u in p]
    assert sorted(seen) == fans and len(set(seen)) == 7
    # following, from a fan's side
    r = await t1.call("GET", f"/users/{fans[0]}/following")
    assert (await r.json()) == {"results": [star], "next": None}
    # an unfollow shows in both lists
    assert (await t1.call("DELETE", "/follows", {"follower": fans[0], "followee": star})).status == 204
    r = await t1.call("GET", f"/users/{star}/followers?limit=100")
    assert (await r.json())["results"] == fans[1:]
    assert (await (await t1.call("GET", f"/users/{fans[0]}/following")).json())["results"] == []
    for bad in ("limit=0", "limit=101", "limit=x", "limit=-1"):
        await expect_error(await t1.call("GET", f"/users/{star}/followers?{bad}"), 400, "invalid_request", "limit")


async def test_tokens(t1: AppCaller, settings: Settings) -> None:
    user = uid("tok")
    r = await t1.call("POST", "/tokens", {"user": user, "ttl": 60})
    assert r.status == 200, await r.text()
    token = (await r.json())["token"]
    claims = verify_token(token, {"t1": settings.apps["t1"].key}, now=int(time.time()))
    assert claims.app == "t1" and claims.user == user
    assert int(time.time()) + 50 <= claims.exp <= int(time.time()) + 61
    r = await t1.call("POST", "/tokens", {"user": user})
    assert r.status == 200
    for bad in ("60", 0, -5, 1.5, True, 10**12):
        await expect_error(await t1.call("POST", "/tokens", {"user": user, "ttl": bad}), 400, "invalid_request", "ttl")
    await expect_error(await t1.call("POST", "/tokens", {"ttl": 60}), 400, "invalid_request", "user")
    await expect_error(await t1.call("POST", "/tokens", {"user": "a\x00", "ttl": 60}), 400, "invalid_request", "user")


# --- dependencies down -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_redis_down_is_503(settings: Settings, aiohttp_client: Any, tmp_path: Any) -> None:
    """A hub whose Redis dies after start-up answers 503 unavailable, never 500.

    The app is started against a private redis-server that is then killed, so the
    shared Redis other tests use is untouched.
    """
    from web.app import create_app

    redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = _free_port()
    proc = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                await asyncio.sleep(0.05)
        s = dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, url=f"redis://127.0.0.1:{port}/0"))
        client = await aiohttp_client(create_app(s))
        caller = AppCaller(client, s.apps["t1"])
        actor = uid("down")
        r = await caller.call("POST", "/activities", activity(actor))
        assert r.status == 202, await r.text()  # works while Redis is up
    finally:
        proc.kill()
        proc.wait()
    calls = [
        ("POST", "/activities", activity(actor)),
        ("PUT", "/follows", {"follower": uid(), "followee": actor}),
        ("GET", f"/users/{actor}/followers", None),
        ("POST", "/tokens", {"user": actor}),
    ]
    for method, path, payload in calls:
        r = await caller.call(method, path, payload)
        await expect_error(r, 503, "unavailable")
    r = await client.get("/readyz")
    assert r.status == 503
    # Bad input is still judged before Redis is needed: no 5xx for it.
    r = await client.post("/v1/apps/t1/activities", data=b"{}", headers={"webhook-id": "x"})
    await expect_error(r, 401, "bad_signature")
