"""The follower cache against a follow or unfollow that lands while it is being loaded.

A load reads Cassandra, then writes the set to Redis. A change made in between must not
be lost behind the load's older list (a follower who never gets fan-out, or an
unfollowed one who still does). The change is made from inside the load, right after
its real Cassandra read, which is the moment that used to lose it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hub.core import Hub
from hub.storage.follows import Follow
from tests.conftest import uid

APP = "t1"


def change_after_the_read(monkeypatch: pytest.MonkeyPatch, hub: Hub, change: Callable[[], Awaitable[None]]) -> None:
    """Run ``change`` once, just after the next read of a followers partition answers."""
    real = hub.db.execute
    pending = [change]

    async def execute(cql: str, params: Any = None, **kw: Any) -> list[Any]:
        rows = await real(cql, params, **kw)
        if "FROM {ks}.followers WHERE" in cql and pending:
            await pending.pop()()
        return rows

    monkeypatch.setattr(hub.db, "execute", execute)


async def test_a_follow_during_a_load_is_not_lost(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    author, early, late = uid("author"), uid("early"), uid("late")
    await hub.follows.add(APP, Follow(early, author, None, 0))
    change_after_the_read(monkeypatch, hub, lambda: hub.follows.add(APP, Follow(late, author, None, 0)))
    assert await hub.follows.followers(APP, author) == [early]  # what the load read
    monkeypatch.undo()
    assert sorted(await hub.follows.followers(APP, author)) == sorted([early, late])
    assert sorted(await hub.follows.followers(APP, author)) == sorted([early, late])  # and cached


async def test_an_unfollow_during_a_load_is_not_undone(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    author, stays, leaves = uid("author"), uid("stays"), uid("leaves")
    for f in (stays, leaves):
        await hub.follows.add(APP, Follow(f, author, None, 0))
    change_after_the_read(monkeypatch, hub, lambda: hub.follows.remove(APP, Follow(leaves, author, None, 0),
                                                                         keep_until=None))
    assert sorted(await hub.follows.followers(APP, author)) == sorted([stays, leaves])
    monkeypatch.undo()
    assert await hub.follows.followers(APP, author) == [stays]
    assert await hub.follows.followers(APP, author) == [stays]


async def test_changes_to_a_loaded_cache_apply_at_once(hub: Hub) -> None:
    author, a, b = uid("author"), uid("a"), uid("b")
    assert await hub.follows.followers(APP, author) == []  # loaded, empty
    await hub.follows.add(APP, Follow(a, author, None, 0))
    await hub.follows.add(APP, Follow(b, author, None, 0))
    await hub.follows.remove(APP, Follow(a, author, None, 0), keep_until=None)
    key = hub.follows.keys(APP).followers(author)
    assert sorted(await hub.redis.smembers(key)) == sorted(["!", b])
    assert await hub.follows.followers(APP, author) == [b]


async def test_a_large_follower_list_is_cached_whole(hub: Hub) -> None:
    """More followers than one Lua call can unpack at once (about 8,000)."""
    author = uid("star")
    many = [f"{uid('f')}-{n}" for n in range(9000)]
    await hub.db.execute_many("INSERT INTO {ks}.followers (app, followee, follower) VALUES (%s, %s, %s)",
                              [(APP, author, f) for f in many])
    assert sorted(await hub.follows.followers(APP, author)) == sorted(many)
    assert await hub.redis.scard(hub.follows.keys(APP).followers(author)) == len(many) + 1


async def test_a_retried_follow_fixes_the_cache_a_replayed_batch_left(hub: Hub) -> None:
    # A follow answered 503 after its logged batch reached the batch log: Cassandra applies
    # the batch later (replay), but that try never changed the cached followers. The
    # client's retry finds the follow made and must still put the follower in the cache.
    from hub.ops.follow import follow, unfollow

    author, fan = uid("author"), uid("fan")
    assert await hub.follows.followers(APP, author) == []  # loaded: the cache is built, empty
    await hub.db.batch([  # the replayed batch: rows only, no cache change
        ("INSERT INTO {ks}.following (app, follower, followee, since, copy) VALUES (%s, %s, %s, %s, %s)",
         (APP, fan, author, None, 0)),
        ("INSERT INTO {ks}.followers (app, followee, follower) VALUES (%s, %s, %s)", (APP, author, fan)),
    ])
    assert await hub.follows.followers(APP, author) == []  # stale
    assert await follow(hub, APP, fan, author, 0) is False  # the retry: it existed
    assert await hub.follows.followers(APP, author) == [fan]
    # Likewise an unfollow whose rows went while its cache change did not.
    await hub.db.batch([
        ("DELETE FROM {ks}.following WHERE app = %s AND follower = %s AND followee = %s", (APP, fan, author)),
        ("DELETE FROM {ks}.followers WHERE app = %s AND followee = %s AND follower = %s", (APP, author, fan)),
    ])
    assert await unfollow(hub, APP, fan, author, False) is False
    assert await hub.follows.followers(APP, author) == []
