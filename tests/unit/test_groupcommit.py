"""Group commit: grouping, ordering of results, failures, and no stranded callers."""

from __future__ import annotations

import asyncio

import pytest

from hub.ops.groupcommit import GroupCommit


class Recorder:
    def __init__(self, delay: float = 0.01, fail_on: str | None = None) -> None:
        self.groups: list[list[str]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.in_flight = 0
        self.max_in_flight = 0

    async def commit(self, key: str, items: list[str]) -> list[str]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.groups.append(list(items))
            await asyncio.sleep(self.delay)
            if self.fail_on in items:
                raise RuntimeError(f"bad {self.fail_on}")
            return [f"{key}/{i}" for i in items]
        finally:
            self.in_flight -= 1


async def test_a_lone_caller_is_committed_at_once() -> None:
    rec = Recorder()
    gc = GroupCommit(rec.commit, max_items=10)
    assert await gc.submit("a", ["x", "y"]) == ["a/x", "a/y"]
    assert rec.groups == [["x", "y"]]


async def test_callers_arriving_during_a_commit_share_the_next_group() -> None:
    rec = Recorder(delay=0.05)
    gc = GroupCommit(rec.commit, max_items=100)
    first = asyncio.create_task(gc.submit("a", ["0"]))
    await asyncio.sleep(0.01)  # the first group is being written
    rest = [asyncio.create_task(gc.submit("a", [f"{i}a", f"{i}b"])) for i in range(1, 6)]
    results = await asyncio.gather(first, *rest)
    assert results[0] == ["a/0"]
    for i, r in enumerate(results[1:], start=1):
        assert r == [f"a/{i}a", f"a/{i}b"]  # each caller gets exactly its own, in order
    assert rec.groups == [["0"], [f"{i}{s}" for i in range(1, 6) for s in "ab"]]
    assert gc.groups == 2 and gc.items == 11


async def test_groups_are_capped_but_never_split_a_caller() -> None:
    rec = Recorder(delay=0.02)
    gc = GroupCommit(rec.commit, max_items=3)
    first = asyncio.create_task(gc.submit("a", ["0"]))
    await asyncio.sleep(0.005)
    others = [asyncio.create_task(gc.submit("a", items)) for items in (["1", "2"], ["3", "4"], ["5", "6", "7", "8"])]
    await asyncio.gather(first, *others)
    assert rec.groups == [["0"], ["1", "2"], ["3", "4"], ["5", "6", "7", "8"]]


async def test_keys_commit_independently() -> None:
    rec = Recorder(delay=0.03)
    gc = GroupCommit(rec.commit, max_items=10)
    a, b = await asyncio.gather(gc.submit("a", ["x"]), gc.submit("b", ["y"]))
    assert (a, b) == (["a/x"], ["b/y"])
    assert rec.max_in_flight == 2


async def test_a_failed_group_fails_its_callers_only() -> None:
    rec = Recorder(delay=0.03, fail_on="bad")
    gc = GroupCommit(rec.commit, max_items=10)
    first = asyncio.create_task(gc.submit("a", ["ok0"]))
    await asyncio.sleep(0.01)
    doomed = [asyncio.create_task(gc.submit("a", [x])) for x in ("ok1", "bad")]
    await asyncio.sleep(0.05)  # the second group (ok1, bad) is being written
    later = asyncio.create_task(gc.submit("a", ["ok2"]))
    assert await first == ["a/ok0"]
    for t in doomed:
        with pytest.raises(RuntimeError, match="bad"):
            await t
    assert await later == ["a/ok2"]


async def test_concurrency_bounds_groups_in_flight_and_strands_nobody() -> None:
    rec = Recorder(delay=0.002)
    gc = GroupCommit(rec.commit, max_items=5, concurrency=2)

    async def caller(n: int) -> None:
        for j in range(20):
            assert await gc.submit("a", [f"{n}.{j}"]) == [f"a/{n}.{j}"]
            if j % 3 == 0:
                await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(*(caller(n) for n in range(30))), 10)
    assert rec.max_in_flight == 2
    assert gc.items == 600
    assert gc.groups < 600  # callers did share groups
