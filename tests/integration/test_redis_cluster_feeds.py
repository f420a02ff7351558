"""The hub's feeds on a real Redis Cluster (issue 21): a local cluster of six nodes
(three primaries, three replicas) on ports of its own from 7200, started by the hub's own
service code (hub/services/redis_cluster.py) with a queue Redis beside it, the shared
Cassandra. Intake, fan-out (flat, aggregated, ranked; chunks spread over many slots),
hot reads (bodies by slot, the page cache), marks, archive, deletes, unfollows, follows
and a rebuild all run through the real hub code; a script that crossed slots would fail
with CROSSSLOT."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from hub.config import FeedGroup, Settings
from hub.config.settings import QueueSettings
from hub.core import Hub
from hub.domain.activity import ActivityInput
from hub.ops import fanout, intake
from hub.ops import follow as follow_ops
from hub.ops.archive import archive
from hub.ops.reads import mark, read_feed
from hub.services.redis_cluster import start_redises, stop_redises
from hub.storage.failover import flush_slots
from hub.storage.redis import connect
from hub.storage.slots import is_cluster, slot_of
from tests.conftest import uid
from web.gate import SignedScripts
from workers.context import close_hub, open_hub

APP = "t1"
WEIGHTS = (("likes", 1.0),)
READERS = 24


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _first_free(start_at: int, count: int = 7) -> int:
    """The first of ``count`` consecutive free ports whose cluster bus ports are free too."""
    for first in range(start_at, start_at + 300):
        if all(_free(p) and _free(p + 10000) for p in range(first, first + count)):
            return first
    raise RuntimeError(f"no {count} free consecutive ports from {start_at}")


@pytest.fixture(scope="module")
def cluster_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    first = _first_free(7200)
    state_dir: Path = tmp_path_factory.mktemp("redis-cluster")
    s = dataclasses.replace(
        settings,
        redis=dataclasses.replace(settings.redis, url=f"redis://127.0.0.1:{first}/0", cluster=True, nodes=()),
        queue=QueueSettings(url=f"redis://127.0.0.1:{first + 6}/0"),
        services=dataclasses.replace(settings.services, state_dir=state_dir),
        feeds={**settings.feeds, "popular": FeedGroup("popular", "flat", "user", 50, None, "weighted", 1.0, WEIGHTS)},
    )
    start_redises(s, progress=lambda _: None)
    try:
        yield s
    finally:
        stop_redises(s, progress=lambda _: None)


@pytest.fixture
async def hub(cluster_settings: Settings) -> AsyncIterator[Hub]:
    h = await open_hub(cluster_settings)
    try:
        yield h
    finally:
        await close_hub(h)


async def _post(hub: Hub, actor: str, verb: str, minutes_ago: int, to: tuple[str, ...] = (),
                likes: int = 0) -> str:
    """Intake's own path (one trip: bodies, own and addressed feeds, the job), then the
    fan-out a worker would run, inline."""
    inp = ActivityInput(actor=actor, verb=verb, object=f"photo:{uid('p')}", to=to, extra={"likes": likes},
                        time=datetime.now(timezone.utc) - timedelta(minutes=minutes_ago))
    (res,) = await intake.accept(hub, APP, [inp], batch=False)
    aid = str(res["id"])
    await fanout.plan(hub, APP, aid)
    for chunk in fanout.chunks(sorted(await hub.follows.followers(APP, actor)), hub.settings.fanout.chunk_size):
        await fanout.write_chunk(hub, APP, aid, chunk)
    return aid


async def _ids(hub: Hub, group: str, user: str, limit: int = 50) -> list[str]:
    page = await read_feed(hub, APP, hub.group(group), user, limit, None)
    return [str(e["id"]) for e in page.results]


async def test_feeds_fan_out_read_mark_and_rebuild_on_a_redis_cluster(hub: Hub) -> None:
    assert is_cluster(hub.redis)
    author, other = uid("author"), uid("other")
    readers = [uid("reader") for _ in range(READERS)]
    k = hub.feeds.keys(APP)
    assert len({slot_of(k.feed_tag(f"timeline:{r}")) for r in readers}) > 3  # a chunk spans slots
    for r in readers:
        await follow_ops.follow(hub, APP, r, author, 0)
    for r in readers:  # cached, so fan-out writes into them
        for g in ("timeline", "timeline_aggregated", "popular"):
            assert await _ids(hub, g, r) == []
    note = f"notification:{readers[0]}"
    posted = [await _post(hub, author, verb, 10 - i, to=(note,), likes=likes)
              for i, (verb, likes) in enumerate([("like", 5), ("post", 0), ("like", 1), ("post", 9)])]
    newest_first = posted[::-1]

    for r in readers:
        assert await _ids(hub, "timeline", r) == newest_first
        assert await _ids(hub, "popular", r) == [posted[3], posted[0], posted[2], posted[1]]
        groups = (await read_feed(hub, APP, hub.group("timeline_aggregated"), r, 10, None)).results
        assert [(g["verb"], g["activity_count"]) for g in groups] == [("post", 2), ("like", 2)]
    assert await _ids(hub, "user", author) == newest_first
    page = await read_feed(hub, APP, hub.group("timeline"), readers[1], 2, None)  # paging
    assert [e["id"] for e in page.results] == newest_first[:2] and page.next
    rest = await read_feed(hub, APP, hub.group("timeline"), readers[1], 10, page.next)
    assert [e["id"] for e in rest.results] == newest_first[2:]

    # Notifications: the hot read, then the kept first page, marks and archive.
    first = await read_feed(hub, APP, hub.group("notification"), readers[0], 10, None)
    assert (len(first.results), first.unseen, first.unread) == (4, 4, 4)  # one group per object
    await asyncio.sleep(0.2)  # the page is kept in the background
    assert await hub.redis.exists(k.agg_page(note)) == 1
    again = await read_feed(hub, APP, hub.group("notification"), readers[0], 10, None)
    assert again.results == first.results
    # A body of the kept page gone from the cache (its bodies are checked by slot): the
    # page is not used but rendered afresh, the same (the body read back from Cassandra),
    # and kept again by the next read, which finds every body cached.
    kept = await hub.redis.get(k.agg_page(note))
    await hub.redis.delete(k.activity(posted[0]))
    assert (await read_feed(hub, APP, hub.group("notification"), readers[0], 10, None)).results == first.results
    assert str(await hub.redis.get(k.agg_page(note))).startswith("?")  # reserved, not used
    assert (await read_feed(hub, APP, hub.group("notification"), readers[0], 10, None)).results == first.results
    await asyncio.sleep(0.2)
    assert await hub.redis.get(k.agg_page(note)) == kept
    counts = await mark(hub, APP, hub.group("notification"), readers[0], "seen", [str(first.results[0]["id"])])
    assert counts == {"unseen": 3, "unread": 4}
    await archive(hub, APP, hub.group("notification"), readers[0], [str(first.results[1]["id"])])
    shown = await read_feed(hub, APP, hub.group("notification"), readers[0], 10, None)
    assert [e["id"] for e in shown.results] == [e["id"] for i, e in enumerate(first.results) if i != 1]

    # A delete leaves every feed; an unfollow takes the author's activities out.
    deleted = await intake.delete(hub, APP, posted[3], None)
    assert deleted == posted[3]
    await fanout.remove_everywhere(hub, APP, posted[3])
    for r in readers:
        assert await _ids(hub, "timeline", r) == newest_first[1:]
    await follow_ops.unfollow(hub, APP, readers[2], author, False)
    assert await _ids(hub, "timeline", readers[2]) == []

    # A new follow copies history; a dropped cache is rebuilt from Cassandra, the same.
    await follow_ops.follow(hub, APP, readers[2], other, 0)
    mine = await _post(hub, other, "post", 0)
    assert await _ids(hub, "timeline", readers[2]) == [mine]
    before = {g: await _ids(hub, g, readers[3]) for g in ("timeline", "timeline_aggregated", "popular")}
    for g in ("timeline", "timeline_aggregated", "popular"):
        await hub.feeds.drop(APP, f"{g}:{readers[3]}")
    assert {g: await _ids(hub, g, readers[3]) for g in before} == before


async def test_the_admission_gate_is_one_call_on_a_redis_cluster(hub: Hub) -> None:
    """GATE touches the replay key, the bucket, the complete-since key and the claims:
    all in the app's hash tag, so one slot."""
    k, gate = hub.feeds.keys(APP), SignedScripts(hub.redis)
    await gate.complete_since(k.complete_since(), 0.0)
    claim = k.foreign_id(uid("fid"))
    keys = [k.webhook(uid("msg")), k.rate(), k.complete_since(), claim]
    args = [100.0, 10, 1000.0, 60, 86400, "0", 600, "A?"]
    assert list(await gate.gate(keys, args)) == [0, None]  # admitted, the claim is ours
    assert list(await gate.gate(keys, args)) == [1, ""]  # a repeat while the first try runs
    assert await hub.redis.get(claim) == "A?"
    await gate.close()


async def test_a_connection_closed_under_a_command_is_an_outage_not_a_bug(cluster_settings: Settings) -> None:
    """redis-py's cluster pipeline closes the client's connections when it meets a
    failover, under the commands of other tasks. Closing them here on purpose, while 40
    tasks send pipelines and commands, must give ConnectionErrors (an outage: a 503, a
    job run again), never an AttributeError (a job failed for good)."""
    redis = connect(cluster_settings.redis)
    stop = asyncio.Event()
    outcomes: Counter[str] = Counter()

    async def use(i: int) -> None:
        while not stop.is_set():
            try:
                pipe = redis.pipeline(transaction=False)
                for k in range(5):
                    pipe.set(f"{cluster_settings.redis.key_prefix}:race:{i}:{k}", k, ex=60)
                await pipe.execute(raise_on_error=False)
                await redis.get(f"{cluster_settings.redis.key_prefix}:race:{i}:0")
                outcomes["ok"] += 1
            except Exception as e:
                outcomes[type(e).__name__] += 1

    async def close_under_them() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.005)
            await redis.aclose()

    tasks = [asyncio.create_task(use(i)) for i in range(40)] + [asyncio.create_task(close_under_them())]
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*tasks)
    await redis.aclose()
    assert set(outcomes) <= {"ok", "ConnectionError"}, outcomes
    assert outcomes["ConnectionError"] > 0 and outcomes["ok"] > 0, outcomes  # the race was met


async def test_a_failover_flush_finds_the_hubs_keys_among_many_others(cluster_settings: Settings) -> None:
    """flush_slots deletes every key of the hub's prefix in a moved slot, however many keys
    of other users of the cluster share the slot, and only those."""
    redis = connect(cluster_settings.redis)
    assert isinstance(redis, RedisCluster)
    prefix, other = cluster_settings.redis.key_prefix, f"other-{uid('app')}"
    tag = f"{{{APP}:{uid('feed')}}}"  # one slot for both prefixes
    slot = key_slot(tag.encode())
    await redis.initialize()
    node = redis.nodes_manager.get_node_from_slot(slot)
    try:
        mine = [f"{prefix}:{tag}:{n}" for n in range(5)]
        await redis.mset(dict.fromkeys(mine, 1))
        for i in range(0, 5000, 500):  # after ours: Redis 7 lists a slot's newest keys first
            await redis.mset({f"{other}:{tag}:{j}": j for j in range(i, i + 500)})
        assert await flush_slots(redis, prefix, slot, slot, node.name) == 5
        assert await redis.exists(*mine) == 0
        assert await redis.execute_command("CLUSTER COUNTKEYSINSLOT", slot, target_nodes=node) == 5000
    finally:
        keys = await redis.execute_command("CLUSTER GETKEYSINSLOT", slot, 6000, target_nodes=node)
        if keys:
            await redis.execute_command("UNLINK", *keys, target_nodes=node)
        await redis.aclose()
