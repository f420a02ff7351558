"""Commands and Lua script calls of several stores, sent to Redis in one round trip.

Under load each round trip costs more than its network time: the request waits for the
event loop to come back to it. Intake therefore caches the new bodies, writes the own
feeds and queues the fan-out job in a single trip (hub/ops/intake.py).

Scripts go as plain ``EVALSHA``: redis-py checks the registered scripts of a pipeline
with ``SCRIPT EXISTS`` first, which is a round trip of its own. A call that finds its
script missing (Redis restarted or flushed its scripts) is sent again on its own, which
loads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError


class Trip:
    def __init__(self, redis: Redis) -> None:
        self.pipe = redis.pipeline(transaction=False)  # queue plain commands on it
        self._scripts: dict[int, tuple[AsyncScript, list[Any], list[Any]]] = {}  # by pipeline position
        self._then: list[tuple[int, Callable[[list[Any]], Awaitable[Any]]]] = []

    def script(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> int:
        """Queue a script call; returns the index of its answer in :meth:`execute`'s list."""
        position = len(self.pipe)
        self._scripts[position] = (script, list(keys), list(args))
        self.pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return position + len(self._then)

    def then(self, step: Callable[[list[Any]], Awaitable[Any]]) -> int:
        """Run ``step`` once the pipeline has answered, given its answers (by pipeline
        position: ``len(trip.pipe)`` when a command was added); returns the index of the
        step's answer in :meth:`execute`'s list. For a call on another Redis that depends
        on this trip (hub/queue.py: a job queue on a Redis of its own). Steps run in the
        order they were added, one after the other."""
        index = len(self.pipe) + len(self._then)
        self._then.append((index, step))
        return index

    async def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Every answer, in order. The first error is raised (after the others ran), or
        with ``raise_on_error=False`` left in its place in the list. A connection error
        is raised either way: it fails the whole trip."""
        results: list[Any] = await self.pipe.execute(raise_on_error=False) if len(self.pipe) else []
        for i, r in enumerate(results):
            if isinstance(r, NoScriptError) and i in self._scripts:
                script, keys, args = self._scripts[i]
                try:
                    results[i] = await script(keys=keys, args=args)  # loads it
                except Exception as e:  # that call's answer
                    if raise_on_error:
                        raise
                    results[i] = e
        if self._then:
            results = await self._run_steps(results)
        if raise_on_error:
            for r in results:
                if isinstance(r, Exception):
                    raise r
        return results

    async def _run_steps(self, results: list[Any]) -> list[Any]:
        answers = list(results)
        for index, step in self._then:  # indexes ascend: each lands where it was promised
            try:
                answer = await step(results)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                raise  # as for the pipeline: the trip fails as a whole
            except Exception as e:  # that step's answer
                answer = e
            answers.insert(index, answer)
        return answers
