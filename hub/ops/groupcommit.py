"""Group commit: concurrent callers' items written together, one group per key at a time.

There is no timer. A caller's group starts at once when fewer than ``concurrency``
groups of its key are being written; callers that arrive while they all are wait and
form the next group. An idle hub therefore adds no latency,
and a busy one writes bigger groups (one Cassandra batch, one pending marker, one job)
instead of queueing more round trips behind each other: the cost per item falls as the
load rises, which is what keeps the latency of single-activity requests flat.

Guarantee: each caller gets the results of exactly its own items, in order, or the
exception that failed its group. A caller that stops waiting (cancelled) does not stop
its group; its items may still be committed, as if the answer had been lost on the way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

Commit = Callable[[K, list[T]], Awaitable[list[R]]]


@dataclass
class _Waiter(Generic[T, R]):
    items: Sequence[T]
    future: asyncio.Future[list[R]]


@dataclass
class _Lane(Generic[T, R]):
    waiting: list[_Waiter[T, R]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class GroupCommit(Generic[K, T, R]):
    def __init__(self, commit: Commit[K, T, R], *, max_items: int, concurrency: int = 1) -> None:
        self._commit = commit
        self._max_items = max_items
        self._concurrency = concurrency
        self._lanes: dict[K, _Lane[T, R]] = {}
        self.groups = 0  # committed groups, for metrics and tests
        self.items = 0

    async def submit(self, key: K, items: Sequence[T]) -> list[R]:
        lane = self._lanes.setdefault(key, _Lane())
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        lane.waiting.append(_Waiter(items, future))
        if len(lane.tasks) < self._concurrency:
            lane.tasks.add(asyncio.create_task(self._drain(key, lane)))
        return await future

    async def _drain(self, key: K, lane: _Lane[T, R]) -> None:
        try:
            while lane.waiting:
                group = self._take(lane)
                items = [item for w in group for item in w.items]
                try:
                    results = await self._commit(key, items)
                except Exception as e:  # every caller of the group gets the failure
                    for w in group:
                        if not w.future.done():
                            w.future.set_exception(e)
                    continue
                except BaseException:  # cancelled (shutdown): its callers are not answered
                    lane.waiting[:0] = group
                    raise
                self.groups += 1
                self.items += len(items)
                start = 0
                for w in group:
                    if not w.future.done():
                        w.future.set_result(results[start : start + len(w.items)])
                    start += len(w.items)
        finally:
            # Synchronously, with no await since the loop's last check: a caller arriving
            # from now on sees this task gone and starts another.
            lane.tasks.discard(asyncio.current_task())
            if not lane.tasks and not lane.waiting:
                self._lanes.pop(key, None)
            elif not lane.tasks:  # cancelled mid-group (shutdown): nobody will commit the rest
                for w in lane.waiting:
                    if not w.future.done():
                        w.future.cancel()
                lane.waiting.clear()

    def _take(self, lane: _Lane[T, R]) -> list[_Waiter[T, R]]:
        """Callers in arrival order up to ``max_items`` items (always at least one caller)."""
        n, total = 0, 0
        for w in lane.waiting:
            if n and total + len(w.items) > self._max_items:
                break
            n += 1
            total += len(w.items)
        group, lane.waiting[:] = lane.waiting[:n], lane.waiting[n:]
        return group
