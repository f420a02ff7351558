"""Concurrent calls of one Lua script, sent to Redis together.

A hot feed read is one script call (hub/storage/feedcache.py), and at 50 concurrent reads
redis-py's fixed cost per command (taking a pooled connection and its lock, the
readiness check, the health check, one send system call) was about a fifth of the
server's CPU. Calls made in the same event-loop turn are therefore queued and sent as one
pipeline when the turn ends: no call waits for a later turn, and those costs are paid once
per batch. Redis also reads and answers the batch with fewer system calls. Each call still
gets its own answer or error; a connection error fails every call of its batch, as it
would have failed each of them.

A call may bring plain commands along (``with_commands``: a read records its user as
active and reads the celebrities beside its script), which ride in the same pipeline. On
a Redis Cluster the pipeline is a cluster pipeline: each call goes to its keys' node,
one round trip per node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from hub.background import Background
from hub.storage.trip import Trip

# One queued call: KEYS and ARGV together, how many KEYS, the commands riding along, its answer.
_Call = tuple[list[Any], int, list[tuple[Any, ...]], "asyncio.Future[Any]"]


class ScriptBatch:
    def __init__(self, redis: Redis, script: AsyncScript) -> None:
        self.redis = redis
        self.script = script
        self._queue: list[_Call] = []
        self._sending = Background()

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        return (await self.with_commands(keys, args, ()))[0]

    async def with_commands(self, keys: list[Any], args: list[Any],
                            commands: Sequence[tuple[Any, ...]]) -> tuple[Any, list[Any]]:
        """The script's answer and those of ``commands`` (each ``(name, *args)``), sent in
        the same round trip; the first error among them is raised."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)  # after the callbacks already due: this turn's other reads
        self._queue.append(([*keys, *args], len(keys), list(commands), fut))
        answer: tuple[Any, list[Any]] = await fut
        return answer

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        self._sending.spawn(self._send(batch))

    async def _send(self, batch: list[_Call]) -> None:
        spans: list[tuple[int, int]] = []  # per call: index of its script's answer, of its last command + 1
        try:
            if len(batch) == 1 and not batch[0][2]:
                argv, nkeys, _, _ = batch[0]
                results: list[Any] = [await self._one(argv, nkeys)]
                spans.append((0, 1))
            else:
                trip = Trip(self.redis)
                for argv, nkeys, commands, _ in batch:
                    at = trip.script(self.script, argv[:nkeys], argv[nkeys:])
                    for command in commands:
                        trip.pipe.execute_command(*command)
                    spans.append((at, len(trip.pipe)))
                results = await trip.execute(raise_on_error=False)
        except Exception as e:  # handed to every waiting call
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        except BaseException:  # cancelled (shutdown): so are the calls
            for *_, fut in batch:
                fut.cancel()
            raise
        for (*_, fut), (at, end) in zip(batch, spans):
            if fut.done():  # the caller was cancelled
                continue
            mine = results[at:end]
            err = next((r for r in mine if isinstance(r, Exception)), None)
            if err is not None:
                fut.set_exception(err)
            else:
                fut.set_result((mine[0], mine[1:]))

    async def _one(self, argv: list[Any], nkeys: int) -> Any:
        try:
            return await self.redis.evalsha(self.script.sha, nkeys, *argv)  # type: ignore[misc]
        except NoScriptError:
            return await self.script(keys=argv[:nkeys], args=argv[nkeys:])  # loads it
